"""Time to build EnvDrop's candidate index for every viewpoint of the real graphs (all 90 scans).

EnvDrop builds a viewpoint's candidates with 36 simulator calls the first time it visits it (about 0.43 ms
per viewpoint with the real MatterSim here); the index computes all of them at once::

    python benchmarks/bench_candidates.py [--conn-dir ../shared/data/connectivity]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402
from envs.gym.candidates import build_candidate_index  # noqa: E402
from envs.kernel.navgraph import load_graphs  # noqa: E402

ENVDROP_US_PER_VIEWPOINT = 430.0  # 36 MatterSim calls per viewpoint, the first time EnvDrop visits it


@dataclass
class BenchConfig:
    conn_dir: str = str(shared_data_dir() / "connectivity")
    """folder with {scan}_connectivity.json and scans.txt"""
    repeats: int = 3
    """builds to time (the first includes the per-graph edge geometry, cached afterwards)"""
    record: Path | None = None
    """also write the figures as JSON here"""


def run(cfg: BenchConfig) -> dict:
    """Time loading the graphs, building the index, and writing then reading its cache."""
    t0 = time.perf_counter()
    graphs = load_graphs(cfg.conn_dir)
    load_s = time.perf_counter() - t0
    build_s = []
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        index = build_candidate_index(graphs)
        build_s.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_candidate_index(graphs, cache_dir=tmp)
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_candidate_index(graphs, cache_dir=tmp)
        cached_s = time.perf_counter() - t0
    viewpoints = sum(int(g.included.sum()) for g in graphs.values())
    return {"config": asdict(cfg), "scans": len(graphs), "viewpoints": viewpoints,
            "candidates": int(len(index.target_ix)), "max_candidates": index.max_candidates,
            "load_graphs_s": load_s, "first_build_s": build_s[0], "build_s": min(build_s), "build_and_cache_s": cold_s,
            "from_cache_s": cached_s, "us_per_viewpoint": [b / viewpoints * 1e6 for b in build_s[1:] or build_s]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conn-dir", default=BenchConfig().conn_dir, help="connectivity folder (default: %(default)s)")
    record.add_arguments(parser, repeats=4)
    a = parser.parse_args(argv)
    result = run(BenchConfig(a.conn_dir, a.repeats, a.record))
    print(f"{result['scans']} scans, {result['viewpoints']:,} viewpoints, {result['candidates']:,} candidates "
          f"(at most {result['max_candidates']} per viewpoint); load graphs {result['load_graphs_s']:.2f} s, "
          f"first build {result['first_build_s']:.3f} s, from the cache {result['from_cache_s']:.3f} s")
    record.report([record.Figure("candidate index build, per viewpoint", "us", result["us_per_viewpoint"],
                                 ENVDROP_US_PER_VIEWPOINT, "EnvDrop's make_candidate over MatterSim, design.md",
                                 higher_is_better=False)], a.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
