"""New paths in the training houses for back-translation (the augmentation set a speaker writes instructions for).

Following the field's augmentation sets (Fried et al. 2018's, which EnvDrop's ``aug_paths.json`` reuses): the
shortest paths between pairs of included viewpoints of the training scans that are 4-6 moves apart and
longer than 5 m (:data:`envs.kernel.paths.R2R_PATHS`), each with a random start heading. Only the paths
matter: the speaker writes the instructions during training, so each episode's instruction is empty.

The trainer samples them from its training env's own graphs and scans (R2R and RxR alike). The command writes
them as an R2R-format file, e.g. for another codebase::

    python -m agents.augment [--data-dir DATA] --out DATA/R2R/R2R_aug_paths.json
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.atomic import write_json
from envs.cli import command, parse_config
from envs.datadir import DataDir
from envs.kernel.navgraph import NavGraph, load_graphs
from envs.kernel.paths import R2R_PATHS, PathRule, sample_paths
from envs.world.builtin import resolve_data_dir
from tasks.r2r import Episode
from tasks.splits import load_split

FIRST_PATH_ID = 1_000_000  # above every R2R path id, so augmented ids never meet real ones


def augmentation_episodes(graphs: Mapping[str, NavGraph], scans: Sequence[str], *, rule: PathRule = R2R_PATHS,
                          max_paths_per_scan: int | None = None, seed: int = 0, language: str = "en",
                          first_path_id: int = FIRST_PATH_ID) -> list[Episode]:
    """One episode per sampled path of ``scans`` (in that order), with an empty instruction.

    ``language`` is the episodes' language code (an RxR model's own, so its vocabulary encodes them).
    """
    rng = np.random.default_rng(seed)
    episodes: list[Episode] = []
    for scan in scans:
        graph = graphs[scan]
        for path in sample_paths(graph, rng, rule, max_paths_per_scan):
            path_id = first_path_id + len(episodes)
            episodes.append(Episode(instr_id=f"{path_id}_0", path_id=path_id, scan=scan, path=path,
                                    heading=float(rng.uniform(0.0, 2 * math.pi)), instruction="",
                                    distance=round(graph.distance(path[0], path[-1]), 6), language=language))
    return episodes


def as_r2r_records(episodes: Sequence[Episode]) -> list[dict]:
    """R2R split-file records (``distance, scan, path_id, path, heading, instructions``) of the episodes."""
    return [{"distance": ep.distance, "scan": ep.scan, "path_id": ep.path_id, "path": ep.path,
             "heading": ep.heading, "instructions": [ep.instruction]} for ep in episodes]


@dataclass
class AugmentConfig:
    """Options of ``python -m agents.augment``."""

    out: Path
    """output R2R-format JSON file"""
    data_dir: Path | None = None
    """data directory (default: the built-in world)"""
    split: str = "train"
    """R2R split whose scans are sampled"""
    min_edges: int = R2R_PATHS.min_edges
    """fewest moves on a path"""
    max_edges: int = R2R_PATHS.max_edges
    """most moves on a path"""
    min_distance: float = R2R_PATHS.min_distance
    """shortest path length in metres (exclusive)"""
    max_paths_per_scan: int | None = None
    """at most this many paths per scan (default: all)"""
    seed: int = 0
    """seeds path sampling and start headings"""


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(AugmentConfig, argv, prog="python -m agents.augment", description=__doc__.split("\n\n")[0])
    data_dir = resolve_data_dir(cfg.data_dir)
    scans = list(dict.fromkeys(ep.scan for ep in load_split(data_dir, "r2r", cfg.split)))
    data = DataDir(data_dir)
    graphs = load_graphs(data.require(data.connectivity, "connectivity folder"), scans)
    episodes = augmentation_episodes(graphs, scans, rule=PathRule(cfg.min_edges, cfg.max_edges, cfg.min_distance),
                                     max_paths_per_scan=cfg.max_paths_per_scan, seed=cfg.seed)
    write_json(cfg.out, as_r2r_records(episodes))
    print(f"wrote {len(episodes)} paths in {len(scans)} scans to {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
