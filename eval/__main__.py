"""Score a results file: ``python -m eval r2r|rxr --results FILE --split SPLIT [--data-dir DIR] ...``.

Prints NE, SR, OSR, TL, SPL, nDTW, SDTW, CLS, steps and the episode count (RxR: per language, en = en-IN +
en-US, hi, te, and their average); ``--json`` prints the summary as JSON instead; ``--per-episode OUT.jsonl``
writes every episode's metrics. Metric choices default to the official scorers (see :mod:`eval.metrics`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from envs.atomic import write_jsonl
from envs.cli import add_config_arguments, add_debug_option, command, config_from_args
from envs.world.builtin import resolve_data_dir
from eval.metrics import MetricOptions
from eval.score import ScoreReport, score_file


@dataclass
class ScoreConfig:
    """Options of ``python -m eval``."""

    results: Path
    """The results (submission) file: a JSON list of {instr_id, trajectory: [[viewpoint, heading, elevation], ...]}."""
    task: Literal["r2r", "rxr"] = "r2r"
    """r2r or rxr."""
    split: str = "val_unseen"
    """The split the results were produced on: train, val_seen or val_unseen."""
    data_dir: Path | None = None
    """Data directory with connectivity/ and R2R/ or RxR/ (default: the built-in world)."""
    per_episode: Path | None = None
    """Write each episode's metrics to this JSON-lines file."""
    json: bool = False
    """Print the summary as JSON instead of a table."""
    allow_missing: bool = False
    """Score only the instructions present instead of failing on missing ones."""
    all_instructions: bool = False
    """R2R: also score instructions past _2 (the official scorer counts _0.._2 only)."""
    languages: list[str] = field(default_factory=list)
    """RxR: score only these languages (en, hi, te or full codes such as en-US)."""
    inclusive: bool = False
    """Count NE == 3 m as success (SR, OSR, SPL); the official R2R scorer requires NE < 3 m."""
    sdtw_inclusive: bool = False
    """SDTW's success as NE <= 3 m, as r4r's dtw.py does (default: the same NE < 3 m as SR)."""
    spl_reference: Literal["shortest", "gold"] = "shortest"
    """SPL's reference length: shortest (the shortest distance, R2R's) or gold (the gold path's length)."""
    spl_floor: float = 0.0
    """Lower bound of SPL's denominator (0 as in R2R's eval.py; 0.01 in EnvDrop, CLIP-ViL and DUET)."""
    collapse_repeats: bool = False
    """Collapse consecutive repeated viewpoints (turns in place) before DTW; the official scorers (r4r, CLIP-ViL's
    RxR eval, DUET) score the trajectory as given."""

    def metric_options(self) -> MetricOptions:
        return MetricOptions(inclusive=self.inclusive, sdtw_inclusive=self.sdtw_inclusive,
                             spl_reference=self.spl_reference, spl_floor=self.spl_floor,  # type: ignore[arg-type]
                             collapse_repeats=self.collapse_repeats)


ONLY_FOR = {"all_instructions": "r2r", "languages": "rxr"}  # options that make sense for one task only


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description="Score a results file against a split: "
                                     "NE, SR, OSR, TL, SPL, nDTW, SDTW, CLS, steps (RxR per language).")
    sub = parser.add_subparsers(dest="task", required=True, metavar="{r2r,rxr}")
    for task, text in (("r2r", "score R2R results"), ("rxr", "score RxR results, per language")):
        p = sub.add_parser(task, help=text, description=text)
        add_config_arguments(p, ScoreConfig, exclude=["task"] + [k for k, t in ONLY_FOR.items() if t != task])
        add_debug_option(p)
    add_debug_option(parser)
    return parser


def parse_config(argv: list[str] | None) -> ScoreConfig:
    return config_from_args(ScoreConfig, build_parser().parse_args(argv))


COLUMNS = (("NE", "nav_error", 1.0), ("SR", "success", 100.0), ("OSR", "oracle_success", 100.0),
           ("TL", "length", 1.0), ("SPL", "spl", 100.0), ("nDTW", "ndtw", 100.0), ("SDTW", "sdtw", 100.0),
           ("CLS", "cls", 100.0), ("steps", "steps", 1.0))


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A fixed-width table, one line per named summary; rates in percent, NE and TL in metres."""
    name_width = max(len(n) for n in rows)
    lines = [" " * name_width + "".join(f"{c:>8}" for c, _, _ in COLUMNS) + f"{'count':>8}"]
    for name, summary in rows.items():
        cells = "".join(f"{summary[k] * scale:8.2f}" if not math.isnan(summary[k]) else f"{'-':>8}"
                        for _, k, scale in COLUMNS)
        lines.append(f"{name:<{name_width}}{cells}{summary['count']:8d}")
    return "\n".join(lines)


def summary_json(cfg: ScoreConfig, report: ScoreReport) -> dict:
    return {"task": cfg.task, "split": cfg.split, "results": str(cfg.results), "summary": report.summary,
            "languages": report.languages, "notes": report.notes, "options": asdict(cfg.metric_options())}


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(argv)
    data_dir = resolve_data_dir(cfg.data_dir)
    report = score_file(cfg.task, cfg.results, data_dir, cfg.split, options=cfg.metric_options(),
                        allow_missing=cfg.allow_missing, all_instructions=cfg.all_instructions,
                        languages=cfg.languages or None)
    if cfg.per_episode is not None:
        write_jsonl(cfg.per_episode, report.rows)
    if cfg.json:
        print(json.dumps(summary_json(cfg, report), indent=2))
    else:
        title = f"{cfg.task.upper()} {cfg.split}: {report.summary['count']} episodes scored from {cfg.results}"
        table = {**report.languages} if report.languages else {"all": report.summary}
        if report.languages:
            table["all"] = report.summary
        print(title)
        print(format_table(table))
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if cfg.per_episode is not None:
        print(f"Per-episode metrics written to {cfg.per_episode}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
