"""Corpus BLEU with several references per hypothesis, as EnvDrop validates its speaker.

EnvDrop calls the TensorFlow NMT ``compute_bleu(refs, hyps, smooth=False)``; this is our own implementation of
the same definition (Papineni et al. 2002):

- modified n-gram precision p_n (n = 1..4) pooled over the corpus: each hypothesis n-gram counts at most as
  often as it appears in any single reference (the max over references), divided by the number of hypothesis
  n-grams;
- geometric mean of p_1..p_4, 0 when any p_n is 0 (no smoothing; ``smooth=True`` gives Lin and Och's add-one);
- brevity penalty exp(1 - r / c) when c <= r, where c is the corpus hypothesis length and r sums the
  *shortest* reference length of each example (NMT's choice; some scorers take the closest length).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class BleuScore:
    bleu: float
    precisions: tuple[float, ...]  # p_1 .. p_N
    brevity_penalty: float
    hypothesis_length: int
    reference_length: int


def ngram_counts(tokens: Sequence[str], max_order: int) -> Counter:
    """Counts of every n-gram of ``tokens`` for n = 1..max_order (keys are tuples)."""
    counts: Counter = Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i:i + n])] += 1
    return counts


def corpus_bleu(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]],
                max_order: int = 4, smooth: bool = False) -> BleuScore:
    """BLEU of ``hypotheses[i]`` (a token list) against ``references[i]`` (a list of token lists)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} reference sets for {len(hypotheses)} hypotheses: give one set each")
    matches = [0] * max_order
    possible = [0] * max_order
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        if not refs:
            raise ValueError("a hypothesis has no reference: every example needs at least one")
        hyp_len += len(hyp)
        ref_len += min(len(r) for r in refs)
        best: Counter = Counter()
        for ref in refs:
            best |= ngram_counts(ref, max_order)  # max count of each n-gram over the references
        for gram, count in (ngram_counts(hyp, max_order) & best).items():
            matches[len(gram) - 1] += count
        for n in range(1, max_order + 1):
            possible[n - 1] += max(len(hyp) - n + 1, 0)
    if smooth:
        precisions = [(m + 1.0) / (p + 1.0) for m, p in zip(matches, possible)]
    else:
        precisions = [m / p if p > 0 else 0.0 for m, p in zip(matches, possible)]
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / max_order) if min(precisions) > 0 else 0.0
    if hyp_len == 0:
        bp = 0.0
    elif hyp_len > ref_len:
        bp = 1.0
    else:
        bp = math.exp(1.0 - ref_len / hyp_len)
    return BleuScore(geo_mean * bp, tuple(precisions), bp, hyp_len, ref_len)
