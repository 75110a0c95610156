"""Room-to-Room (R2R) episodes: read the official split files and expand them into one episode per instruction.

An R2R split file is a JSON list of paths::

    {"distance": 11.66, "scan": "VLzqgDo317F", "path_id": 6250, "path": [viewpoint, ...],
     "heading": 3.751, "instructions": [str, str, str]}

Each instruction becomes an :class:`Episode` with ``instr_id = f"{path_id}_{k}"`` (the id results files
and the official scorer use). The test split holds only the start viewpoint and no ``distance``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.datadir import DataDir, DataError, data_error, read_json
from envs.validate import check_field, check_number, check_text, check_texts
from tasks.tokenize import ENVDROP_MIN_COUNT, R2R_MAX_LEN, Vocab

R2R_SPLITS = ("train", "val_seen", "val_unseen", "test")


@dataclass
class Episode:
    """One instruction to follow: where it starts, the gold path and the words (R2R and RxR alike)."""

    instr_id: str  # R2R: f"{path_id}_{k}"; RxR: str(instruction_id)
    path_id: int
    scan: str
    path: list[str]  # gold viewpoints, start first (test split: the start only)
    heading: float  # start heading, radians clockwise from +y
    instruction: str
    distance: float | None = None  # gold path length in metres (R2R; None for test and RxR)
    language: str = "en"  # "en" for R2R; RxR's code as given, e.g. "hi-IN"
    instr_tokens: list[str] | None = None  # filled by encode_episodes
    instr_encoding: np.ndarray | None = None  # int64 [max_len], filled by encode_episodes
    extra: dict[str, Any] = field(default_factory=dict)  # other fields of the record (RxR: annotator_id, ...)
    origin: str = ""  # where the file holds it, for messages: "entry 12 (path_id 4332)", "line 7 (instruction_id 3)"

    @property
    def start(self) -> str:
        return self.path[0]

    @property
    def goal(self) -> str:
        return self.path[-1]


def resolve_split_file(source: str | os.PathLike, split: str, task: str) -> Path:
    """A split file from a data directory (``DATA/R2R/...``, ``DATA/RxR/...``) or a file path given directly."""
    source = Path(source)
    if source.is_dir():
        data = DataDir(source)
        path = data.r2r_split(split) if task == "R2R" else data.rxr_split(split)
        return data.require(path, f"{task} {split} split")
    if not source.exists():
        raise data_error(source, f"{task} split file not found", "Pass a data directory or an existing split file")
    return source


SPLIT_FIX = "Check that this is an unmodified split file (download it again)"
# The instructions of a path that has none yet: augmentation paths (python -m agents.augment, EnvDrop's
# aug_paths.json), whose instructions the speaker writes. Any other blank instruction is refused.
PATH_ONLY = [""]


def load_r2r(source: str | os.PathLike, split: str) -> list[Episode]:
    """Episodes of one R2R split (``train``, ``val_seen``, ``val_unseen``, ``test``), one per instruction.

    ``source`` is a data directory (reads ``R2R/R2R_{split}.json``) or a split file. Each path is checked
    (types, finite heading and distance, a non-empty path and instruction list, no blank instruction except
    the single ``""`` of a path-only entry (:data:`PATH_ONLY`), no repeated ``path_id``); a malformed file
    raises one :class:`DataError` naming the file, the entry and the field. Paths are checked against the
    graphs by :func:`tasks.splits.check_paths`.
    """
    path = resolve_split_file(source, split, "R2R")
    records = read_json(path, "R2R split file", "Download the split file again")
    if not isinstance(records, list):
        raise data_error(path, "top level is not a list of paths", "An R2R split file is a JSON list")
    if not records:
        raise data_error(path, "holds no paths (an empty list)", SPLIT_FIX)
    episodes = []
    entry_of: dict[int, int] = {}
    for index, record in enumerate(records):
        if not _well_formed(record):
            _diagnose(path, index, record)
        path_id = record["path_id"]
        if path_id in entry_of:
            raise data_error(path, f"entry {index} field 'path_id' is {path_id}, the same as entry "
                             f"{entry_of[path_id]}'s",
                             f"Each path needs its own path_id (its instructions are {path_id}_0, {path_id}_1, ...)")
        entry_of[path_id] = index
        where = f"entry {index} (path_id {path_id})"
        distance = record.get("distance")
        for k, instruction in enumerate(record["instructions"]):
            episodes.append(
                Episode(
                    instr_id=f"{path_id}_{k}",
                    path_id=path_id,
                    scan=record["scan"],
                    path=list(record["path"]),
                    heading=float(record["heading"]),
                    instruction=instruction,
                    distance=None if distance is None else float(distance),
                    language="en",
                    origin=where,
                )
            )
    return episodes


def _texts(values: object) -> bool:
    """A non-empty list of strings that are not blank (str.strip raises on anything else: a check at C speed)."""
    try:
        return type(values) is list and bool(values) and all(map(str.strip, values))  # type: ignore[arg-type]
    except TypeError:
        return False


def _finite(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


def _well_formed(record: object) -> bool:
    """Every field of an R2R path record as :func:`load_r2r` needs it: the common case, checked in one pass (a
    record that fails goes to :func:`_diagnose`, whose checks are the same, for the message)."""
    if type(record) is not dict:
        return False
    scan, distance = record.get("scan"), record.get("distance", 0.0)
    return (type(record.get("path_id")) is int and type(scan) is str and bool(scan.strip())
            and _texts(record.get("path")) and _finite(record.get("heading"))
            and _finite(distance) and distance >= 0.0
            and (_texts(record.get("instructions")) or record.get("instructions") == PATH_ONLY))


def _diagnose(path: Path, index: int, record: object) -> None:
    """Raise the :class:`DataError` that names the first field of entry ``index`` that is wrong."""
    where = f"entry {index}"
    path_id = check_field(path, where, record, "path_id", int, fix=SPLIT_FIX)
    where = f"entry {index} (path_id {path_id})"
    check_text(path, where, record, "scan", SPLIT_FIX)
    check_texts(path, where, record, "path", "viewpoint ids", SPLIT_FIX)
    check_number(path, where, record, "heading", fix=SPLIT_FIX)
    check_number(path, where, record, "distance", optional=True, minimum=0.0, fix=SPLIT_FIX)
    if record.get("instructions") != PATH_ONLY:
        check_texts(path, where, record, "instructions", "instruction texts", SPLIT_FIX)
    raise AssertionError(f"{path}: {where} failed the quick check but passes every field check")


def encode_episodes(episodes: Iterable[Episode], vocab: Vocab, max_len: int = R2R_MAX_LEN) -> None:
    """Fill ``instr_tokens`` and ``instr_encoding`` (int64 ``[max_len]``) of every episode in place."""
    for episode in episodes:
        episode.instr_tokens = vocab.tokens(episode.instruction)
        episode.instr_encoding = vocab.encode(episode.instruction, max_len)


def r2r_vocab(instructions: Iterable[str], min_count: int = ENVDROP_MIN_COUNT, legacy_order: bool = True) -> Vocab:
    """EnvDrop's vocabulary of R2R instructions (``legacy_order`` reproduces its ``train_vocab.txt`` exactly)."""
    return Vocab.build(instructions, min_count=min_count, legacy_order=legacy_order)


def build_r2r_vocab(source: str | os.PathLike, split: str = "train", min_count: int = ENVDROP_MIN_COUNT,
                    legacy_order: bool = True) -> Vocab:
    """EnvDrop's vocabulary from an R2R split file (or a data directory's)."""
    return r2r_vocab((e.instruction for e in load_r2r(source, split)), min_count, legacy_order)


__all__ = ["Episode", "R2R_SPLITS", "DataError", "load_r2r", "encode_episodes", "r2r_vocab", "build_r2r_vocab",
           "resolve_split_file", "SPLIT_FIX"]
