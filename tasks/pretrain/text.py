"""Word pieces for the V&L transformer: a WordPiece tokenizer (``tokenizers``, BERT's normaliser and
pre-tokeniser, lower-cased) trained on the run's own text, so nothing is downloaded; it is saved in every
checkpoint as its JSON string and travels from pretraining to fine-tuning with the weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0-4, in this order
PAD, UNK, CLS, SEP, MASK = range(5)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A WordPiece tokenizer (``tokenizers.Tokenizer``) of at most ``vocab_size`` pieces learnt from ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                                        special_tokens=list(SPECIALS), show_progress=False))
    # the trainer numbers pieces of equal frequency in hash order, which changes from one process to the next:
    # sorted ids make the tokenizer (and so a run) a function of the texts alone
    pieces = sorted(set(tokenizer.get_vocab()) - set(SPECIALS))
    tokenizer.model = models.WordPiece({p: i for i, p in enumerate([*SPECIALS, *pieces])}, unk_token="[UNK]")
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
