"""Room-Across-Room (RxR) episodes: guide files in English, Hindi and Telugu, and per-language tokenizers.

A guide file (``rxr_{split}_guide.jsonl.gz``; test: ``rxr_test_standard_public_guide.jsonl.gz``) holds one
JSON object a line with ``instruction_id, path_id, scan, path, heading, instruction, language`` (en-IN,
en-US, hi-IN, te-IN), ``timed_instruction``, ``split``, ``annotator_id``, ``edit_distance``.

CLIP-ViL trains one model per language group: ``en`` (en-IN + en-US, EnvDrop's tokenizer), ``hi`` and
``te`` (its stanza tokenization is replaced here by :func:`~tasks.tokenize.split_multilingual`, which keeps
vowel signs and viramas inside their words); vocabularies use min count 5, encodings 160 tokens.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable

from envs.datadir import DataError, data_error
from envs.validate import check_field, check_number, check_text, check_texts
from tasks.r2r import SPLIT_FIX, Episode, resolve_split_file
from tasks.tokenize import ENVDROP_MIN_COUNT, RXR_MAX_LEN, Splitter, Vocab, split_multilingual, split_sentence

RXR_SPLITS = ("train", "val_seen", "val_unseen", "test")
LANGUAGE_GROUPS = {"en": ("en-IN", "en-US"), "hi": ("hi-IN",), "te": ("te-IN",)}
LANGUAGES = tuple(code for codes in LANGUAGE_GROUPS.values() for code in codes)
KEPT_FIELDS = ("split", "annotator_id", "edit_distance")  # timed_instruction is left out: large, unused here

__all__ = ["RXR_SPLITS", "RXR_MAX_LEN", "LANGUAGE_GROUPS", "LANGUAGES", "load_rxr", "expand_languages", "language_group",
           "splitter_for", "build_rxr_vocab"]


def expand_languages(languages: Iterable[str] | str | None) -> set[str] | None:
    """Language codes for a filter: groups ``en``/``hi``/``te`` expand, exact codes (``en-US``) pass through;
    anything else is a :class:`~envs.datadir.DataError` that lists the choices."""
    if languages is None:
        return None
    if isinstance(languages, str):
        languages = [languages]
    codes: set[str] = set()
    for language in languages:
        if language not in LANGUAGE_GROUPS and language not in LANGUAGES:
            raise DataError(f"unknown RxR language {language!r}: choose groups {', '.join(LANGUAGE_GROUPS)} "
                            f"(en = en-IN + en-US) or codes {', '.join(LANGUAGES)}")
        codes.update(LANGUAGE_GROUPS.get(language, (language,)))
    return codes


def language_group(language: str) -> str:
    """The group of a language code: ``en-US`` -> ``en``, ``hi-IN`` -> ``hi`` (a group maps to itself)."""
    return language.split("-")[0]


def splitter_for(language: str) -> Splitter:
    """The tokenizer of a language: EnvDrop's for English, the Unicode-aware one for everything else."""
    return split_sentence if language_group(language) == "en" else split_multilingual


def _open_text(path: os.PathLike):
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def load_rxr(source: str | os.PathLike, split: str, languages: Iterable[str] | str | None = None) -> list[Episode]:
    """Episodes of an RxR guide file (``.jsonl`` or ``.jsonl.gz``), optionally only some languages.

    ``source`` is a data directory (reads ``RxR/rxr_{split}_guide.jsonl[.gz]``) or a guide file;
    ``languages`` takes groups (``"en"`` = en-IN + en-US, ``"hi"``, ``"te"``) or exact codes. Each
    episode's ``instr_id`` is ``str(instruction_id)`` and ``language`` the code as given. A malformed line
    raises one :class:`~envs.datadir.DataError` naming the file, the line and the field.
    """
    path = resolve_split_file(source, split, "RxR")
    wanted = expand_languages(languages)
    episodes = []
    line_of: dict[int, int] = {}
    try:
        with _open_text(path) as lines:
            for line_no, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise data_error(path, f"line {line_no} is not valid JSON ({err})", "Download the guide file again") from None
                where = f"line {line_no}"
                instruction_id = check_field(path, where, record, "instruction_id", int, fix=SPLIT_FIX)
                if instruction_id in line_of:
                    raise data_error(path, f"{where} field 'instruction_id' is {instruction_id}, the same as line "
                                     f"{line_of[instruction_id]}'s", "Each instruction needs its own instruction_id")
                line_of[instruction_id] = line_no
                where = f"line {line_no} (instruction_id {instruction_id})"
                language = check_field(path, where, record, "language", str, fix=SPLIT_FIX)
                if language not in LANGUAGES:
                    raise data_error(path, f"{where} field 'language' is {language!r}, not an RxR language code",
                                     f"RxR's codes are {', '.join(LANGUAGES)}; fix or drop the line")
                episode = Episode(
                    instr_id=str(instruction_id),
                    path_id=check_field(path, where, record, "path_id", int, fix=SPLIT_FIX),
                    scan=check_text(path, where, record, "scan", SPLIT_FIX),
                    path=check_texts(path, where, record, "path", "viewpoint ids", SPLIT_FIX),
                    heading=check_number(path, where, record, "heading", fix=SPLIT_FIX),
                    instruction=check_text(path, where, record, "instruction", SPLIT_FIX),
                    language=language,
                    extra={name: record[name] for name in KEPT_FIELDS if name in record},
                    origin=where,
                )
                if wanted is None or language in wanted:
                    episodes.append(episode)
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise data_error(path, f"cannot be read ({err})", "Download the guide file again") from None
    if not line_of:
        raise data_error(path, "holds no instructions (no JSON lines)", "Download the guide file again")
    return episodes


def build_rxr_vocab(episodes: Iterable[Episode], language: str, min_count: int = ENVDROP_MIN_COUNT) -> Vocab:
    """A vocabulary for one language group from (training) episodes, with that language's tokenizer."""
    codes = expand_languages(language_group(language))
    split = splitter_for(language)
    return Vocab.build((e.instruction for e in episodes if e.language in codes), min_count=min_count, split=split)
