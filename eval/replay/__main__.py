"""``python -m eval.replay --results FILE --split SPLIT --out replay.html``: see :mod:`eval.replay`."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from envs.cli import command, parse_config
from envs.datadir import DataDir, DataError
from envs.kernel.navgraph import load_graphs
from envs.world.builtin import resolve_data_dir
from eval.replay.episodes import Selection, replay_data
from eval.replay.figure import write_figures
from eval.replay.page import write_page


@dataclass
class ReplayConfig:
    """Options of ``python -m eval.replay``."""

    results: Path
    """the results file (submission format, or the extended .details.json with attention and action scores)"""
    out: Path | None = None
    """the HTML page to write (one self-contained file)"""
    split: str = "val_unseen"
    """the split the results were produced on"""
    task: Literal["r2r", "rxr"] = "r2r"
    """the task of the results"""
    data_dir: Path | None = None
    """data directory (default: the built-in world)"""
    instr_id: list[str] = field(default_factory=list)
    """show these episodes (default: the first --limit of the results file)"""
    worst: int | None = None
    """show the N worst episodes: failures first, then by nDTW and navigation error"""
    limit: int = 100
    """at most this many episodes when neither --instr-id nor --worst is given"""
    views_dir: Path | None = None
    """pre-rendered views {scan}/{viewpoint}_rgb/{0..35}.jpg (default: render the data directory's skyboxes)"""
    no_images: bool = False
    """maps only: no view images (smaller, faster pages)"""
    png: Path | None = None
    """also write one PNG per episode (the map with both paths) into this folder"""
    languages: list[str] = field(default_factory=list)
    """RxR: only these languages (en, hi, te or full codes)"""
    quiet: bool = False
    """no progress bar"""


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(ReplayConfig, argv, prog="python -m eval.replay", description=__doc__.split(":")[0])
    if cfg.out is None and cfg.png is None:
        raise DataError("nothing to write: pass --out replay.html and/or --png DIR")
    data_dir = resolve_data_dir(cfg.data_dir)
    selection = Selection(cfg.instr_id, cfg.worst, cfg.limit)
    progress = lambda items: tqdm(items, desc="views", unit="viewpoint", disable=cfg.quiet)  # noqa: E731
    replay = replay_data(cfg.task, cfg.results, data_dir, cfg.split, selection, cfg.views_dir,
                         images=not cfg.no_images and cfg.out is not None, languages=cfg.languages or None,
                         progress=progress)
    if cfg.png is not None:
        data = DataDir(data_dir)
        graphs = load_graphs(data.connectivity, sorted({r["scan"] for r in replay.episodes}))
        written = write_figures(replay.episodes, graphs, cfg.png)
        print(f"{len(written)} maps written to {cfg.png}")
    for note in replay.notes:
        print(f"note: {note}", file=sys.stderr)
    if cfg.out is not None:
        size = write_page(cfg.out, replay.as_json())
        print(f"{len(replay.episodes)} episodes, {len(replay.images)} view images, {size / 2**20:.1f} MB -> {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
