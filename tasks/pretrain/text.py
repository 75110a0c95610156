"""Word pieces for the V&L transformer: a WordPiece tokenizer (``tokenizers``, BERT's normaliser and
pre-tokeniser, lower-cased) whose vocabulary is learnt from the run's own text, so nothing is downloaded; it is
saved in every checkpoint as its JSON string and travels from pretraining to fine-tuning with the weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0-4, in this order
PAD, UNK, CLS, SEP, MASK = range(5)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A WordPiece tokenizer (``tokenizers.Tokenizer``) of ``vocab_size`` pieces at most (but every character) learnt
    from ``texts``.

    The pieces are every character seen (as a word start and as a ``##`` continuation) and the most frequent
    words (ties in alphabetical order); WordPiece's greedy longest match reads a known word whole and spells
    others from the longest known prefix on. ``tokenizers``' own WordPiece trainer breaks ties between equally
    frequent merges in hash order, so two processes (or two runs) would learn different vocabularies: a run
    must be a function of its seed, and processes under torchrun must agree.
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(word for text in texts
                    for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in words for c in word})
    pieces = [*SPECIALS, *chars, *(f"##{c}" for c in chars)]
    known = set(pieces)
    pieces += [w for w, _ in sorted(words.items(), key=lambda t: (-t[1], t[0])) if w not in known]
    tokenizer = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces[:max(vocab_size, 2 * len(chars) + 5)])},
                                           unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                             special_tokens=[("[CLS]", CLS), ("[SEP]", SEP)])
    return tokenizer


def load_tokenizer(json_text: str):
    """The tokenizer saved in a checkpoint (``tokenizer.to_str()``)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json_text)


def encode(tokenizer, texts: list[str], max_len: int) -> torch.Tensor:
    """Word-piece ids ``[T, max_len]`` (``[CLS] ... [SEP]``, cut to ``max_len``, padded with 0)."""
    out = torch.full((len(texts), max_len), PAD, dtype=torch.long)
    for row, encoding in enumerate(tokenizer.encode_batch(texts)):
        ids = encoding.ids[: max_len - 1] + [SEP] if len(encoding.ids) > max_len else encoding.ids
        out[row, : len(ids)] = torch.tensor(ids)
    return out


def trim(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a batch of padded ids to its longest text: ``(ids [B, L], mask [B, L])``."""
    mask = (ids != PAD).long()
    length = max(1, int(mask.sum(1).max()))
    return ids[:, :length], mask[:, :length]
