"""Load all 90 real navigation graphs with all-pairs shortest paths; print time and peak memory.

Target (issue 2): under 10 s and under 500 MB on a 2-core machine.
Run: ``python benchmarks/bench_navgraph.py [--data-dir ../shared/data]``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=shared_data_dir())
    record.add_arguments(parser)
    args = parser.parse_args(argv)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from envs.kernel import navgraph

    seconds = []
    for _ in range(args.repeats):
        navgraph._load_cached.cache_clear()  # each repeat reads and solves every graph again
        start = time.perf_counter()
        graphs = navgraph.load_graphs(args.data_dir / "connectivity")
        seconds.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    viewpoints = sum(len(g) for g in graphs.values())
    table_mb = sum(g.distances.nbytes + g.next_hop_table.nbytes for g in graphs.values()) / 2**20
    print(f"{len(graphs)} scans, {viewpoints} viewpoints, distance tables {table_mb:.1f} MB, "
          f"process before import {rss_before:.0f} MB")
    record.report([record.Figure("load 90 graphs + all-pairs shortest paths", "s", seconds, higher_is_better=False,
                                 target="< 10 s"),
                   record.Figure("peak memory loading the graphs", "MB", [peak], higher_is_better=False,
                                 target="< 500 MB")], args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
