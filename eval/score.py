"""Scoring a results file: validate it against a split, score every episode, aggregate (per language for RxR).

The results (submission) format is a JSON list of ``{"instr_id": str, "trajectory": [[viewpoint, heading,
elevation], ...]}``. Validation follows R2R's official ``tasks/R2R/eval.py`` but fails with a message that
names the entry and the fix instead of an assertion: every trajectory starts at the episode's start, stays
in its scan, and moves only along graph edges; every scored instruction of the split is present once.
As the official scorer does, R2R scores only instructions ``_0`` to ``_2`` of each path (15 train/val_seen
paths have a fourth, which agents also run): results for the others are accepted and skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envs.atomic import write_json
from envs.datadir import DataDir, DataError, data_error, read_json
from envs.kernel.navgraph import NavGraph, load_graphs
from envs.validate import NUMBER, check_field, shown
from eval.metrics import MetricOptions, aggregate, invalid_moves, score_episodes
from tasks.rxr import LANGUAGE_GROUPS
from tasks.splits import check_task, load_split

R2R_SCORED_INSTRUCTIONS = 3  # eval.py builds '%d_%d' % (path_id, i) for i in range(3)


@dataclass(frozen=True)
class Reference:
    """What scoring needs of one episode: its id, scan, gold path, (RxR) language; and its start heading."""

    instr_id: str
    scan: str
    path: list[str]
    language: str | None = None
    heading: float = 0.0


@dataclass
class ScoreReport:
    """Per-episode metrics (in results-file order), the summary, per-language summaries and notes for the user."""

    rows: list[dict]
    summary: dict[str, float]
    languages: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- results files
DETAIL_KEYS = ("instruction_tokens", "decisions")  # the extended results format (see eval.replay)


def details_path(path: str | Path) -> Path:
    """Where the extended results beside a results file go: ``results.json`` -> ``results.details.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.details{path.suffix or '.json'}")


def write_results(path: str | Path, results: Sequence[dict]) -> None:
    """Write a results file in the submission format (atomically); entries that carry replay details
    (:data:`DETAIL_KEYS`) also go, whole, to :func:`details_path` beside it."""
    write_json(path, [{"instr_id": r["instr_id"], "trajectory": r["trajectory"]} for r in results])
    if any(key in r for r in results for key in DETAIL_KEYS):
        write_json(details_path(path), list(results))


RESULTS_FIX = 'Each entry must be {"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]}'
STEP_FIX = "Each step must be [viewpoint_id, heading, elevation] (heading and elevation finite radians)"


def read_results(path: str | Path) -> list[dict]:
    """Read a results file, checking its shape: a list of objects with an ``instr_id`` (a string, or RxR's
    integer id) and a ``trajectory`` of ``[viewpoint, heading, elevation]`` steps (heading and elevation may be
    left out, as some agents do, but a bare viewpoint string is not a step)."""
    path = Path(path)
    results = read_json(path, "results file", "Pass --results the JSON list your agent wrote (submission format)")
    if not isinstance(results, list):
        raise data_error(path, f"expected a JSON list of results, found {type(results).__name__}",
                         'Write [{"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]}, ...]')
    for k, item in enumerate(results):
        where = f"entry {k}"
        if not isinstance(item, dict):
            raise data_error(path, f"{where} is a {type(item).__name__}, not an object", RESULTS_FIX)
        if "instr_id" in item:
            where += f" (instr_id {item['instr_id']!r})"
        missing = [key for key in ("instr_id", "trajectory") if key not in item]
        if missing:
            raise data_error(path, f"{where} lacks {' and '.join(repr(m) for m in missing)}", RESULTS_FIX)
        check_field(path, where, item, "instr_id", (str, int), fix=RESULTS_FIX)
        traj = item["trajectory"]
        if not isinstance(traj, list) or not traj:
            raise data_error(path, f"{where}: 'trajectory' must be a non-empty list",
                             "It starts with the episode's start viewpoint, as the agent recorded it")
        for s, step in enumerate(traj):
            if not _is_step(step):
                raise data_error(path, f"{where}: trajectory step {s} is {shown(step)}", STEP_FIX)
    return results


def _is_step(step: object) -> bool:
    """``[viewpoint, heading, elevation]``, ``[viewpoint, heading]`` or ``[viewpoint]`` with finite angles."""
    return (isinstance(step, list) and 1 <= len(step) <= 3 and isinstance(step[0], str) and bool(step[0])
            and all(isinstance(x, NUMBER) and not isinstance(x, bool) and math.isfinite(x) for x in step[1:]))


def load_references(task: str, data_dir: str | Path, split: str, languages: Sequence[str] | None = None,
                    allow_test: bool = False) -> list[Reference]:
    """The split's episodes as :class:`Reference` records, through ``tasks.r2r`` / ``tasks.rxr``.

    Test splits have no goals and are refused unless ``allow_test`` (agents may still run on them).
    """
    if split.startswith("test") and not allow_test:
        raise DataError(f"the {task} {split} split has no goal viewpoints, so it cannot be scored here; "
                        "submit its results to the task's evaluation server")
    return as_references(task, load_split(data_dir, check_task(task), split, languages))


def as_references(task: str, episodes: Iterable) -> list[Reference]:
    """What scoring needs of each episode (``tasks.r2r.Episode``); RxR's carry their language."""
    return [Reference(ep.instr_id, ep.scan, list(ep.path), ep.language if task == "rxr" else None,
                      float(ep.heading)) for ep in episodes]


def scored_subset(task: str, references: Iterable[Reference], all_instructions: bool = False) -> list[Reference]:
    """The references the official scorer counts: R2R's instructions ``_0.._2`` (all with ``all_instructions``)."""
    references = list(references)
    if task != "r2r" or all_instructions:
        return references
    return [r for r in references if _instruction_index(r.instr_id) < R2R_SCORED_INSTRUCTIONS]


def _instruction_index(instr_id: str) -> int:
    """``k`` of an R2R ``{path_id}_{k}`` id (0 for ids of another shape, which are always scored)."""
    suffix = instr_id.rsplit("_", 1)[-1]
    return int(suffix) if "_" in instr_id and suffix.isdigit() else 0


# ---------------------------------------------------------------------------------------------- scoring
def _check_entry(source: str, k: int, item: dict, ref: Reference, graph: NavGraph) -> list[str]:
    where = f"entry {k} (instr_id {item['instr_id']!r})"
    visited = [step[0] for step in item["trajectory"]]
    for s, vp in enumerate(visited):
        if vp not in graph.index:
            raise data_error(source, f"{where}: trajectory step {s} is at viewpoint {vp!r}, which is not in "
                             f"scan {ref.scan}", "Trajectories must stay in the episode's scan")
    if visited[0] != ref.path[0]:
        raise data_error(source, f"{where}: the trajectory starts at {visited[0]} but the episode starts at "
                         f"{ref.path[0]}", "Record the start viewpoint as the first step")
    bad = invalid_moves(visited, graph)
    if bad:
        s, a, b = bad[0]
        raise data_error(source, f"{where}: step {s} moves from {graph.ids[a]} to {graph.ids[b]}, which are not "
                         f"joined by an edge of scan {ref.scan}'s navigation graph",
                         "Record every viewpoint passed through; moves must follow graph edges")
    return visited


def score_results(results: Sequence[dict], references: Sequence[Reference], graphs: Mapping[str, NavGraph], *,
                  scored: Sequence[Reference] | None = None, options: MetricOptions = MetricOptions(),
                  allow_missing: bool = False, source: str = "<results>") -> ScoreReport:
    """Validate ``results`` against the split and score them.

    ``references`` are all the split's episodes (an id outside them is an error); ``scored`` the ones to
    score (default: all). A scored episode missing from the results is an error unless ``allow_missing``,
    when only the present ones are scored and a note says how many were left out.
    """
    scored = list(references) if scored is None else list(scored)
    known = {r.instr_id: r for r in references}
    wanted = {r.instr_id for r in scored}
    seen: dict[str, int] = {}
    notes: list[str] = []
    picked: list[tuple[dict, Reference, list[str]]] = []
    skipped = 0
    for k, item in enumerate(results):
        instr_id = str(item["instr_id"])
        if instr_id not in known:
            raise data_error(source, f"entry {k}: instr_id {instr_id!r} is not in this split",
                             "Score the results against the split they were produced on (--split)")
        if instr_id in seen:
            raise data_error(source, f"entry {k}: instr_id {instr_id!r} repeats entry {seen[instr_id]}",
                             "Keep one trajectory per instruction")
        seen[instr_id] = k
        if instr_id not in wanted:
            skipped += 1
            continue
        ref = known[instr_id]
        picked.append((item, ref, _check_entry(source, k, item, ref, graphs[ref.scan])))
    missing = [r.instr_id for r in scored if r.instr_id not in seen]
    if missing:
        if not allow_missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise data_error(source, f"{len(missing)} of the split's {len(scored)} instructions have no "
                             f"trajectory ({shown})", "Run the agent on the whole split, or pass --allow-missing "
                             "to score only the ones present")
        notes.append(f"--allow-missing: scored {len(picked)} of {len(scored)} instructions; "
                     f"{len(missing)} missing ones left out")
    if skipped:
        notes.append(f"skipped {skipped} results the official scorer does not count "
                     f"(R2R scores instructions _0.._2 only; --all-instructions scores them)")
    rows = score_episodes([v for _, _, v in picked], [r.path for _, r, _ in picked],
                          [graphs[r.scan] for _, r, _ in picked], options)
    out = []
    for (_, ref, _), row in zip(picked, rows):
        head = {"instr_id": ref.instr_id, "scan": ref.scan}
        if ref.language is not None:
            head["language"] = ref.language
        out.append(head | row)
    report = ScoreReport(out, aggregate(rows), notes=notes)
    if any(r.language is not None for _, r, _ in picked):
        report.languages = language_summaries(out)
    return report


def score_episode_results(task: str, episodes: Sequence, graphs: Mapping[str, NavGraph],
                          results: Sequence[dict]) -> ScoreReport:
    """Score ``results`` against episodes already in memory (an env's), with the official scorer's rules
    (R2R: instructions ``_0.._2``; RxR: per language group and their average too)."""
    references = as_references(task, episodes)
    return score_results(results, references, graphs, scored=scored_subset(task, references))


def language_summaries(rows: Sequence[dict]) -> dict[str, dict[str, float]]:
    """RxR's breakdown: en (en-IN + en-US), hi, te, and ``average``, the mean over the languages present."""
    out: dict[str, dict[str, float]] = {}
    for group, codes in LANGUAGE_GROUPS.items():
        members = [r for r in rows if r.get("language") in codes]
        if members:
            out[group] = aggregate(members)
    others = sorted({r.get("language") for r in rows} - {c for cs in LANGUAGE_GROUPS.values() for c in cs})
    for code in others:
        out[str(code)] = aggregate([r for r in rows if r.get("language") == code])
    if out:
        keys = [k for k in next(iter(out.values())) if k != "count"]
        out["average"] = {k: float(np.mean([s[k] for s in out.values()])) for k in keys}
        out["average"]["count"] = sum(s["count"] for g, s in out.items() if g != "average")
    return out


def score_file(task: str, results_path: str | Path, data_dir: str | Path, split: str, *,
               options: MetricOptions = MetricOptions(), allow_missing: bool = False,
               all_instructions: bool = False, languages: Sequence[str] | None = None) -> ScoreReport:
    """Read, validate and score a results file against ``split`` of ``data_dir`` (the command's whole job)."""
    results = read_results(results_path)
    references = load_references(task, data_dir, split, languages)
    if not references:
        where = f" in languages {', '.join(languages)}; choose languages the split holds" if languages else ""
        raise DataError(f"the {task} {split} split has no episodes{where}")
    data = DataDir(Path(data_dir))
    conn = data.require(data.connectivity, "connectivity folder")
    graphs = load_graphs(conn, sorted({r.scan for r in references}))
    return score_results(results, references, graphs, scored=scored_subset(task, references, all_instructions),
                         options=options, allow_missing=allow_missing, source=str(results_path))
