"""A task's split by name: R2R or RxR episodes from a data directory, and the vocabularies agents train with.

The one place that maps ``(task, split)`` to its file in a data directory (``R2R/R2R_{split}.json`` or
``RxR/rxr_{split}_guide.jsonl.gz``) and a task to its vocabulary rule, for the envs, the scorer and the
baselines alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from envs.datadir import DataDir, DataError
from tasks.r2r import Episode, load_r2r, r2r_vocab
from tasks.rxr import build_rxr_vocab, language_group, load_rxr
from tasks.tokenize import ENVDROP_MIN_COUNT, Vocab, split_multilingual

TASKS = ("r2r", "rxr")
JOINT = "joint"  # the key of a joint multilingual vocabulary


def check_task(task: str) -> str:
    """``task`` if it is one of :data:`TASKS`, else a :class:`DataError` naming the choices."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return task


def load_split(data_dir: str | Path | DataDir, task: str, split: str,
               languages: Sequence[str] | None = None) -> list[Episode]:
    """The episodes of ``split`` of ``task`` in a data directory (RxR: only ``languages``, if given)."""
    data = data_dir if isinstance(data_dir, DataDir) else DataDir(Path(data_dir))
    if check_task(task) == "r2r":
        return load_r2r(data.require(data.r2r_split(split), f"R2R {split} split"), split)
    return load_rxr(data.require(data.rxr_split(split), f"RxR {split} guide file"), split,
                    languages=list(languages) if languages else None)


def build_vocabs(task: str, train: Sequence[Episode]) -> dict[str, Vocab]:
    """Vocabularies from the training episodes: EnvDrop's for R2R (key ``"en"``); for RxR one per language
    group present (``en``, ``hi``, ``te``), as CLIP-ViL trains one model per language."""
    if check_task(task) == "r2r":
        return {"en": r2r_vocab(ep.instruction for ep in train)}
    groups = sorted({language_group(ep.language) for ep in train})
    return {group: build_rxr_vocab(train, group) for group in groups}


def build_joint_vocab(train: Sequence[Episode], min_count: int = ENVDROP_MIN_COUNT) -> Vocab:
    """One vocabulary for every language of the training episodes (a joint multilingual model): words of any
    script split by :func:`~tasks.tokenize.split_multilingual` (on English it gives EnvDrop's tokens), kept
    when seen ``min_count`` times."""
    return Vocab.build((ep.instruction for ep in train), min_count=min_count, split=split_multilingual)
