"""Instruction tokenizers and the word vocabulary, following R2R-EnvDrop's ``r2r_src/utils.py``.

EnvDrop's rules (kept exactly, so its ``train_vocab.txt`` and checkpoints line up word for word):

* :func:`split_sentence`: split the stripped sentence with ``re.split(r"(\\W+)")`` (the separators are kept),
  strip and lower-case every piece, drop empty ones; a piece made only of ASCII punctuation is broken
  into single characters unless it is all full stops (``".."`` stays one token). A separator that mixes
  punctuation and spaces, e.g. ``". ("``, therefore stays one token, as in EnvDrop.
* Vocabulary file: ``<PAD>`` (0), ``<UNK>`` (1), ``<EOS>`` (2), then the words with count >= 5 in the
  training split, most frequent first. ``<BOS>`` is not in the file: EnvDrop's Tokenizer appends it on
  load, so its id is the file's length (991 for ``train_vocab.txt``).
* Encoding: ``<BOS> words <EOS>``, padded with ``<PAD>`` to ``max_len`` (80 for R2R); a longer one is cut
  to ``max_len`` with ``<EOS>`` written over the last kept slot. Unknown words map to ``<UNK>``.

:func:`split_multilingual` is for Hindi and Telugu (RxR): Python's ``\\w`` does not match combining marks
(vowel signs, viramas), so ``\\W+`` splits Indic words apart; there a word is a run of letters, marks,
numbers, ``_`` and the zero-width (non-)joiners.
"""

from __future__ import annotations

import os
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from envs.atomic import write_bytes
from envs.datadir import data_error
from envs.validate import first_duplicate

PAD, UNK, EOS, BOS = "<PAD>", "<UNK>", "<EOS>", "<BOS>"
BASE_VOCAB = (PAD, UNK, EOS)  # the head of every EnvDrop vocabulary file, in this order
R2R_MAX_LEN = 80  # EnvDrop's maxInput
RXR_MAX_LEN = 160  # CLIP-ViL's RxR setting
ENVDROP_MIN_COUNT = 5

_SPLIT = re.compile(r"(\W+)")
_ASCII_PUNCT = frozenset(string.punctuation)
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ / ZWJ sit inside Indic words

Splitter = Callable[[str], list[str]]


def _punct_split(piece: str, is_punct: Callable[[str], bool]) -> list[str]:
    """EnvDrop's rule for one stripped piece: all-punctuation pieces become characters, unless all dots."""
    if all(is_punct(c) for c in piece) and not all(c == "." for c in piece):
        return list(piece)
    return [piece]


def split_sentence(sentence: str) -> list[str]:
    """EnvDrop's English tokenizer: lower-cased words and punctuation tokens (see the module docstring)."""
    tokens: list[str] = []
    for piece in _SPLIT.split(sentence.strip()):
        piece = piece.strip().lower()
        if piece:
            tokens += _punct_split(piece, _ASCII_PUNCT.__contains__)
    return tokens


def _is_word_char(char: str) -> bool:
    return char == "_" or char in _JOINERS or unicodedata.category(char)[0] in "LMN"


def _is_punct(char: str) -> bool:
    return char in _ASCII_PUNCT or unicodedata.category(char)[0] in "PS"


def split_multilingual(sentence: str) -> list[str]:
    """Tokenizer for any script: words are runs of letters + combining marks + numbers (+ ``_``, ZWJ, ZWNJ).

    The text is NFC-normalised first (so ``ड़`` typed as one code point or as ``ड`` + nukta gives one
    token). Separators are split on white space, then EnvDrop's punctuation rule applies with Unicode
    punctuation (so the Devanagari danda ``।`` is a token of its own). On ASCII English it gives the
    same tokens as :func:`split_sentence` except that mixed separators like ``". ("`` become ``. (``.
    """
    tokens: list[str] = []
    word: list[str] = []
    sep: list[str] = []

    def flush_sep() -> None:
        for piece in "".join(sep).split():
            tokens.extend(_punct_split(piece, _is_punct))
        sep.clear()

    # NFC so that one word has one spelling: RxR mixes precomposed and decomposed nukta letters
    for char in unicodedata.normalize("NFC", sentence.lower()):
        if _is_word_char(char):
            if sep:
                flush_sep()
            word.append(char)
        else:
            if word:
                tokens.append("".join(word))
                word.clear()
            sep.append(char)
    if word:
        tokens.append("".join(word))
    flush_sep()
    return tokens


class Vocab:
    """Word <-> id map with EnvDrop's layout: ``<PAD>`` 0, ``<UNK>`` 1, ``<EOS>`` 2, words..., ``<BOS>`` last.

    ``split`` is the tokenizer used by :meth:`encode` (EnvDrop's for English, :func:`split_multilingual`
    for Hindi/Telugu).
    """

    def __init__(self, words: Iterable[str], split: Splitter = split_sentence):
        self.words = list(words)
        if tuple(self.words[:3]) != BASE_VOCAB:
            raise ValueError(f"a vocabulary must start with {', '.join(BASE_VOCAB)}; got {self.words[:3]}")
        if BOS not in self.words:
            self.words.append(BOS)  # EnvDrop's Tokenizer adds it after loading the file
        self.index = {word: i for i, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("a vocabulary must not repeat a word")
        self.split = split
        self.pad_id, self.unk_id, self.eos_id, self.bos_id = (self.index[t] for t in (PAD, UNK, EOS, BOS))

    @classmethod
    def load(cls, path: str | os.PathLike, split: Splitter = split_sentence) -> Vocab:
        """Read a vocabulary file (one word a line, as EnvDrop's ``train_vocab.txt``)."""
        path = Path(path)
        if not path.exists():
            raise data_error(path, "vocabulary file not found", "Build one with Vocab.build(...).save(path)")
        fix = "Use an EnvDrop-style vocabulary file: <PAD>, <UNK>, <EOS>, then one word a line"
        try:
            words = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError as err:
            raise data_error(path, f"is not UTF-8 text ({err.reason} at byte {err.start})", fix) from None
        if tuple(words[:3]) != BASE_VOCAB:
            raise data_error(path, f"first lines are {words[:3]}, expected {list(BASE_VOCAB)}", fix)
        for line, word in enumerate(words, start=1):
            if not word:  # a token may hold a space (EnvDrop's ". ." is one), never nothing
                raise data_error(path, f"line {line} is empty", fix)
        repeat = first_duplicate(words)
        if repeat is not None:
            raise data_error(path, f"line {repeat[1] + 1} repeats the word {words[repeat[1]]!r} of line {repeat[0] + 1}",
                             "Each word must appear once (its line number is its id)")
        if BOS in words[:-1]:
            raise data_error(path, f"holds {BOS} before its last line", f"{BOS} is appended on load; leave it out")
        return cls(words, split)

    @classmethod
    def build(
        cls,
        sentences: Iterable[str],
        min_count: int = ENVDROP_MIN_COUNT,
        split: Splitter = split_sentence,
        legacy_order: bool = False,
    ) -> Vocab:
        """EnvDrop's ``build_vocab``: words seen at least ``min_count`` times, most frequent first.

        Ties keep first-seen order; ``legacy_order=True`` orders them as Python 2's dict did, which is
        how EnvDrop's released vocabulary files were made (it reproduces them exactly).
        """
        count: Counter[str] = Counter()
        for sentence in sentences:
            count.update(split(sentence))
        items = list(count.items())
        if legacy_order:
            items = _py2_dict_order(items)
        items.sort(key=lambda item: item[1], reverse=True)  # stable: ties keep the order above
        return cls([*BASE_VOCAB, *(word for word, n in items if n >= min_count)], split)

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as EnvDrop does: one word a line, without the appended ``<BOS>``."""
        words = self.words[:-1] if self.words[-1] == BOS else self.words
        write_bytes(path, "".join(f"{word}\n" for word in words).encode("utf-8"))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def tokens(self, sentence: str) -> list[str]:
        """The sentence split into tokens by this vocabulary's tokenizer."""
        return self.split(sentence)

    def encode(self, sentence: str, max_len: int = R2R_MAX_LEN) -> np.ndarray:
        """``<BOS> words <EOS>`` as int64 ``[max_len]``, padded with ``<PAD>`` (0) or cut as EnvDrop does.

        Unlike EnvDrop (which returns None), a sentence with no tokens encodes as ``<BOS> <EOS>``.
        """
        ids = [self.bos_id, *(self.index.get(token, self.unk_id) for token in self.split(sentence)), self.eos_id]
        if len(ids) > max_len:
            ids = ids[:max_len]
            ids[-1] = self.eos_id  # EnvDrop keeps max_len - 2 words and ends with <EOS>
        out = np.full(max_len, self.pad_id, dtype=np.int64)
        out[: len(ids)] = ids
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Words of an encoding, joined by spaces: a leading ``<BOS>`` skipped, stopping at ``<EOS>``/``<PAD>``."""
        words = []
        for position, i in enumerate(int(i) for i in ids):
            if i == self.bos_id and position == 0:
                continue
            if i in (self.eos_id, self.pad_id):
                break
            words.append(self.words[i])
        return " ".join(words)


# ------------------------------------------------------------------------------- Python 2 dict order


def _py2_hash(text: str) -> int:
    """CPython 2.7's string hash (no randomisation, 64-bit C long), as its dicts placed keys."""
    if not text:
        return 0
    mask = (1 << 64) - 1
    x = (ord(text[0]) << 7) & mask
    for char in text:
        x = ((1000003 * x) & mask) ^ ord(char)
    x ^= len(text)
    if x >= 1 << 63:
        x -= 1 << 64
    return -2 if x == -1 else x


def _py2_dict_order(items: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """``items`` (in insertion order) in the iteration order of a CPython 2.7 dict built by those inserts.

    Emulates the open-addressing table: probe ``i = 5 i + perturb + 1`` with ``perturb >>= 5``, grow to
    the next power of two above 4x the used count when two thirds full, re-inserting in slot order.
    """
    mask64 = (1 << 64) - 1

    def place(table: list, key: str, value: int, h: int) -> None:
        mask = len(table) - 1
        i = h & mask
        perturb = h & mask64  # C casts the hash to size_t
        while table[i & mask] is not None:
            i = (i << 2) + i + perturb + 1
            perturb >>= 5
        table[i & mask] = (key, value, h)

    table: list = [None] * 8
    used = 0
    for key, value in items:
        place(table, key, value, _py2_hash(key))
        used += 1
        if used * 3 >= len(table) * 2:
            size = 8
            while size <= used * (2 if used > 50000 else 4):
                size <<= 1
            old, table = table, [None] * size
            for entry in old:
                if entry is not None:
                    place(table, entry[0], entry[1], entry[2])
    return [(key, value) for key, value, _ in filter(None, table)]
