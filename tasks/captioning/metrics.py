"""Caption metrics through ``pycocoevalcap`` (the COCO caption evaluation): BLEU-1..4, METEOR, ROUGE-L,
CIDEr-D and SPICE, plus the CIDEr-D reward of self-critical training (:class:`CiderD`).

Java: the PTB tokenizer, METEOR and SPICE run Java programs shipped in the package. Without a ``java`` on the
path the captions are tokenized in Python the same way (lower case, punctuation tokens dropped) and METEOR and
SPICE are skipped, each with one message. SPICE also needs Stanford CoreNLP 3.6.0 jars, which its first run
downloads into the package's ``spice/lib``; where they are missing (a machine without a network) SPICE is
skipped with a message saying how to install them.

pycocoevalcap's ``Cider`` is CIDEr-D (Vedantam et al. 2015: clipped n-gram counts, Gaussian length penalty
sigma 6, x10), with document frequencies taken from the references being scored.
"""

from __future__ import annotations

import math
import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path

SPICE_HOW_TO = ("SPICE needs Stanford CoreNLP 3.6.0: on a machine with a network run "
                "python -c 'from pycocoevalcap.spice.get_stanford_models import get_stanford_models; "
                "get_stanford_models()' once (it puts stanford-corenlp-3.6.0.jar and -models.jar into {lib})")
METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "SPICE")
_PUNCT = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}


def java_available() -> bool:
    return shutil.which("java") is not None


def spice_ready() -> tuple[bool, str]:
    """Whether SPICE can run here, and why not."""
    if not java_available():
        return False, "no Java runtime (install default-jre-headless)"
    import pycocoevalcap.spice as spice

    lib = Path(spice.__file__).parent / "lib"
    if not (lib / "stanford-corenlp-3.6.0.jar").exists() or not (lib / "stanford-corenlp-3.6.0-models.jar").exists():
        return False, SPICE_HOW_TO.format(lib=lib)
    return True, ""


def simple_tokenize(caption: str) -> str:
    """Lower-cased words with punctuation dropped: the PTB tokenizer's output on plain captions, without Java."""
    return " ".join(t for t in re.findall(r"[\w']+|[^\w\s]", caption.lower()) if t not in _PUNCT)


def tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """pycocoevalcap's PTB tokenizer (Java), or :func:`simple_tokenize` without Java."""
    if not java_available():
        return {k: [simple_tokenize(c) for c in v] for k, v in captions.items()}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})


def coco_scores(references: dict[str, list[str]], predictions: dict[str, str],
                metrics: tuple[str, ...] = METRICS, quiet: bool = False) -> tuple[dict[str, float], dict[str, str]]:
    """Corpus scores of ``predictions`` (image id -> caption) against ``references`` (image id -> captions),
    in pycocoevalcap's units (CIDEr-D x1; multiply by 100 for the papers' tables). Returns ``(scores,
    skipped)``, ``skipped`` naming each metric that could not run here and why (also printed, once each)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ids = sorted(predictions)
    gts = tokenize({i: references[i] for i in ids})
    res = tokenize({i: [predictions[i]] for i in ids})
    scores: dict[str, float] = {}
    skipped: dict[str, str] = {}
    if any(m.startswith("BLEU") for m in metrics):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        scores.update({f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu) if f"BLEU-{n + 1}" in metrics})
    if "ROUGE-L" in metrics:
        scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    if "CIDEr-D" in metrics:
        scores["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    if "METEOR" in metrics:
        if java_available():
            from pycocoevalcap.meteor.meteor import Meteor

            scores["METEOR"] = float(Meteor().compute_score(gts, res)[0])
        else:
            skipped["METEOR"] = "no Java runtime (install default-jre-headless)"
    if "SPICE" in metrics:
        ready, why = spice_ready()
        if ready:
            from pycocoevalcap.spice.spice import Spice

            scores["SPICE"] = float(Spice().compute_score(gts, res)[0])
        else:
            skipped["SPICE"] = why
    if not quiet:
        for metric, why in skipped.items():
            print(f"{metric} skipped: {why}", file=sys.stderr)
    return scores, skipped


def _ngrams(words: list[str], n: int = 4) -> Counter:
    return Counter(tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


class CiderD:
    """CIDEr-D of single captions against references, with document frequencies from a fixed corpus (the
    training references), as self-critical training uses it for rewards (pycocoevalcap recomputes them from
    whatever is scored, which a batch of a few images makes meaningless). Same formula as pycocoevalcap's
    ``CiderScorer`` (tested to agree when the corpus is the scored references)."""

    def __init__(self, corpus: list[list[str]], n: int = 4, sigma: float = 6.0) -> None:
        self.n, self.sigma = n, sigma
        self.df: Counter = Counter()
        for refs in corpus:
            self.df.update({g for ref in refs for g in _ngrams(ref.split(), n)})
        self.log_docs = math.log(float(len(corpus)))

    def _vector(self, words: list[str]) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [defaultdict(float) for _ in range(self.n)]
        norm = [0.0] * self.n
        for gram, tf in _ngrams(words, self.n).items():
            value = tf * (self.log_docs - math.log(max(1.0, self.df[gram])))
            vec[len(gram) - 1][gram] = value
            norm[len(gram) - 1] += value * value
        return vec, [math.sqrt(x) for x in norm], len(words)

    def score(self, caption: str, references: list[str]) -> float:
        """CIDEr-D of one (tokenized) caption against its (tokenized) references."""
        vec, norm, length = self._vector(caption.split())
        total = 0.0
        for ref in references:
            rvec, rnorm, rlength = self._vector(ref.split())
            penalty = math.exp(-((length - rlength) ** 2) / (2 * self.sigma**2))
            for k in range(self.n):
                value = sum(min(v, rvec[k][g]) * rvec[k][g] for g, v in vec[k].items())
                if norm[k] and rnorm[k]:
                    value /= norm[k] * rnorm[k]
                total += value * penalty
        return total / self.n / len(references) * 10.0
