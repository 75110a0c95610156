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

from envs.datadir import shared_data_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=shared_data_dir())
    args = parser.parse_args(argv)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    from envs.kernel.navgraph import load_graphs

    graphs = load_graphs(args.data_dir / "connectivity")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    viewpoints = sum(len(g) for g in graphs.values())
    table_mb = sum(g.distances.nbytes + g.next_hop_table.nbytes for g in graphs.values()) / 2**20
    print(f"scans            {len(graphs)}")
    print(f"viewpoints       {viewpoints}")
    print(f"load + APSP      {seconds:.2f} s   (target < 10 s: {seconds / 10:.2f} of budget)")
    print(f"peak RSS         {peak:.0f} MB  (process before import {rss_before:.0f} MB; target < 500 MB)")
    print(f"distance tables  {table_mb:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
