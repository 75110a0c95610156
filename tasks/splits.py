"""A task's split by name: R2R or RxR episodes from a data directory, and the vocabularies agents train with.

The one place that maps ``(task, split)`` to its file in a data directory (``R2R/R2R_{split}.json`` or
``RxR/rxr_{split}_guide.jsonl.gz``) and a task to its vocabulary rule, for the envs, the scorer and the
baselines alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat
from pathlib import Path

import numpy as np

from envs.datadir import DataDir, DataError, data_error
from envs.kernel.navgraph import load_graph
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
               languages: Sequence[str] | None = None, check_graphs: bool = True) -> list[Episode]:
    """The episodes of ``split`` of ``task`` in a data directory (RxR: only ``languages``, if given).

    With ``check_graphs`` (the default) every path is checked against its scan's graph
    (:func:`check_paths`); the graphs stay cached for the caller, which loads them next. Only a caller that
    reads the words alone (a vocabulary) passes False.
    """
    data = data_dir if isinstance(data_dir, DataDir) else DataDir(Path(data_dir))
    if check_task(task) == "r2r":
        source = data.require(data.r2r_split(split), f"R2R {split} split")
        episodes = load_r2r(source, split)
    else:
        source = data.require(data.rxr_split(split), f"RxR {split} guide file")
        episodes = load_rxr(source, split, languages=list(languages) if languages else None)
    if check_graphs:
        check_paths(source, episodes, data.require(data.connectivity, "connectivity folder"))
    return episodes


def check_paths(source: Path, episodes: Sequence[Episode], connectivity: Path) -> None:
    """Every path of ``episodes`` (read from ``source``) runs through included viewpoints of its scan's graph
    along its edges; else one :class:`DataError` naming the split file, the entry and the viewpoint.

    Vectorised per scan: the viewpoints of all its paths are looked up at once.
    """
    by_scan: dict[str, list[Episode]] = {}
    # an R2R path's instructions share it (and its origin), so each path is checked once
    for episode in {episode.origin or id(episode): episode for episode in episodes}.values():
        by_scan.setdefault(episode.scan, []).append(episode)
    for scan, group in by_scan.items():
        file = Path(connectivity) / f"{scan}_connectivity.json"
        if not file.exists():
            raise data_error(source, f"{group[0].origin} field 'scan' is {scan}, which has no connectivity file "
                             f"({file})", "Check the scan id, or add the scan's connectivity file")
        graph = load_graph(connectivity, scan)
        viewpoints = list(chain.from_iterable(episode.path for episode in group))
        ix = np.array(list(map(graph.index.get, viewpoints, repeat(-1))), dtype=np.int64)
        ends = np.cumsum([len(episode.path) for episode in group])
        unknown = ix < 0
        bad = unknown | ~graph.included[np.maximum(ix, 0)]
        if bad.any():
            k = int(np.argmax(bad))
            j = int(np.searchsorted(ends, k, side="right"))
            step = k - (int(ends[j - 1]) if j else 0)
            why = "which is not in" if unknown[k] else "which is excluded ('included': false) in"
            raise data_error(source, f"{group[j].origin} field 'path'[{step}] is viewpoint {viewpoints[k]}, {why} "
                             f"scan {scan}'s graph ({file})", "Check the split file against the connectivity files")
        edges = graph.unobstructed | graph.unobstructed.T
        a, b = ix[:-1], ix[1:]
        inside = np.ones(len(ix) - 1, dtype=bool) if len(ix) > 1 else np.zeros(0, dtype=bool)
        inside[ends[:-1] - 1] = False  # the pair across two episodes' paths
        jump = inside & (a != b) & ~edges[a, b]
        if jump.any():
            k = int(np.argmax(jump))
            j = int(np.searchsorted(ends, k, side="right"))
            step = k + 1 - (int(ends[j - 1]) if j else 0)
            raise data_error(source, f"{group[j].origin} field 'path'[{step}] moves from {viewpoints[k]} to "
                             f"{viewpoints[k + 1]}, which are not joined by an edge of scan {scan}'s graph ({file})",
                             "Check the split file against the connectivity files")


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
