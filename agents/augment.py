"""New paths in the training houses for back-translation (the augmentation set a speaker writes instructions for).

Following the field's augmentation sets (Fried et al. 2018's, which EnvDrop's ``aug_paths.json`` reuses): the
shortest paths between pairs of included viewpoints of the training scans that are ``min_edges``..``max_edges``
moves apart (R2R's 4-6) and longer than ``min_distance`` metres (R2R's 5 m), each with a random start heading.
Only the paths matter: the speaker writes the instructions during training, so each record carries one empty
instruction (one episode per path when loaded with ``tasks.r2r.load_r2r``).

    python -m tasks.augment [--data-dir DATA] --out DATA/R2R/R2R_aug_paths.json
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from envs.datadir import DataDir, DataError
from envs.navgraph import NavGraph, load_graph
from tasks.r2r import Episode


def hop_counts(graph: NavGraph) -> np.ndarray:
    """[N, N] number of moves on the (distance-)shortest path between every pair (-1: unreachable)."""
    n = len(graph)
    nxt = graph.next_hop_table  # next hop table computed with the distances
    goal = np.broadcast_to(np.arange(n)[None, :], (n, n))
    cur = np.broadcast_to(np.arange(n)[:, None], (n, n)).copy()
    hops = np.where(nxt >= 0, 0, -1)
    moving = (cur != goal) & (hops >= 0)
    while moving.any():  # every pair walks one hop per round, all pairs at once
        cur = np.where(moving, nxt[cur, goal], cur)
        hops = hops + moving
        moving = (cur != goal) & (hops >= 0)
    return hops


def sample_paths(graph: NavGraph, rng: np.random.Generator, min_edges: int = 4, max_edges: int = 6,
                 min_distance: float = 5.0, max_paths: int | None = None) -> list[tuple[list[str], float]]:
    """Shortest paths (viewpoints, length in metres) of one scan meeting the hop and distance limits."""
    hops = hop_counts(graph)
    ok = (hops >= min_edges) & (hops <= max_edges) & (graph.distances > min_distance)
    ok &= graph.included[:, None] & graph.included[None, :]
    pairs = np.argwhere(ok)
    if max_paths is not None and len(pairs) > max_paths:
        pairs = pairs[np.sort(rng.choice(len(pairs), max_paths, replace=False))]
    return [(graph.shortest_path(graph.ids[a], graph.ids[b]), float(graph.distances[a, b])) for a, b in pairs]


def augment_records(data_dir: str | Path, scans: list[str], *, min_edges: int = 4, max_edges: int = 6,
                    min_distance: float = 5.0, max_paths_per_scan: int | None = None, seed: int = 0,
                    first_path_id: int = 1_000_000) -> list[dict]:
    """R2R-format records (``distance, scan, path_id, path, heading, instructions``) of sampled paths."""
    rng = np.random.default_rng(seed)
    conn = DataDir(data_dir).connectivity
    records = []
    for scan in scans:
        for path, length in sample_paths(load_graph(conn, scan), rng, min_edges, max_edges, min_distance,
                                         max_paths_per_scan):
            records.append({"distance": round(length, 6), "scan": scan, "path_id": first_path_id + len(records),
                            "path": path, "heading": float(rng.uniform(0.0, 2 * math.pi)), "instructions": [""]})
    return records


def records_to_episodes(records: list[dict]) -> list[Episode]:
    """One :class:`tasks.r2r.Episode` per record (instruction left empty for the speaker to write)."""
    return [Episode(instr_id=f"{r['path_id']}_0", path_id=r["path_id"], scan=r["scan"], path=list(r["path"]),
                    heading=r["heading"], instruction="", distance=r["distance"]) for r in records]


def training_scans(data_dir: str | Path, split: str = "train") -> list[str]:
    """The scans of an R2R split, in first-seen order (the houses augmentation may use)."""
    path = DataDir(data_dir).require(DataDir(data_dir).r2r_split(split), f"R2R {split} split")
    return list(dict.fromkeys(r["scan"] for r in json.loads(path.read_text())))


@dataclass
class AugmentConfig:
    out: str = ""  # output R2R-format JSON file
    data_dir: str | None = None  # data directory (default: the built-in world)
    split: str = "train"  # whose scans to sample in
    min_edges: int = 4  # fewest moves on a path
    max_edges: int = 6  # most moves on a path
    min_distance: float = 5.0  # shortest allowed path length in metres
    max_paths_per_scan: int | None = None  # sample at most this many paths per scan (default: all)
    seed: int = 0  # seeds path sampling and start headings


_HELP = {"out": "output R2R-format JSON file", "data_dir": "data directory (default: the built-in world)",
         "split": "R2R split whose scans are sampled", "min_edges": "fewest moves on a path (R2R: 4)",
         "max_edges": "most moves on a path (R2R: 6)", "min_distance": "shortest path length in metres (R2R: 5)",
         "max_paths_per_scan": "at most this many paths per scan (default: all)",
         "seed": "seeds path sampling and start headings"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.augment", description=__doc__.split("\n\n")[0])
    for f in fields(AugmentConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float, "int | None": int, "str | None": str}.get(str(f.type), str)
        parser.add_argument(flag, type=kind, default=f.default, required=f.name == "out", help=_HELP[f.name])
    cfg = AugmentConfig(**vars(parser.parse_args(argv)))
    data_dir = cfg.data_dir
    if data_dir is None:
        from envs.world import default_world_dir
        data_dir = default_world_dir()
    try:
        records = augment_records(data_dir, training_scans(data_dir, cfg.split), min_edges=cfg.min_edges,
                                  max_edges=cfg.max_edges, min_distance=cfg.min_distance,
                                  max_paths_per_scan=cfg.max_paths_per_scan, seed=cfg.seed)
    except DataError as err:
        parser.exit(2, f"error: {err}\n")
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    Path(cfg.out).write_text(json.dumps(records))
    print(f"wrote {len(records)} paths in {len({r['scan'] for r in records})} scans to {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
