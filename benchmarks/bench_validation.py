"""What validation costs at load time: all 90 real graphs and the full R2R splits, this checkout against another.

Each measurement runs in a fresh process (no cache helps it), ``--repeats`` times, the two checkouts taking turns
so that the machine's changing load falls on both; each figure is this checkout's, with the baseline's median as
its reference (the ratio is baseline / this checkout: below 1 when validation costs time):

- ``graphs``: ``load_graphs`` of every scan in ``scans.txt`` (JSON, checks, all-pairs shortest paths);
- ``graphs, no APSP``: the same with the shortest-path tables stubbed out, so the reading and checking
  (what validation changes) is not hidden behind Floyd-Warshall;
- ``splits``: the four R2R splits through ``tasks.splits.load_split`` (14,039 + 1,021 + 2,349 + 4,173
  instructions), which now also checks every path against the graphs.

Run: ``python benchmarks/bench_validation.py [--data-dir ../shared/data] [--baseline DIR] [--repeats N]``, where
DIR is a checkout of the code before validation, e.g. ``git archive 0bb9635 | tar -x -C /tmp/base``. Target
(issue 15): validation makes loading at most 10% slower.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import record  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402

# Runs in the measured checkout: only names that exist in old and new code alike.
PROBE = """
import json, sys, time
from pathlib import Path
data, stub = Path(sys.argv[1]), sys.argv[2] == "stub"
from envs.kernel import navgraph
if stub:
    navgraph.NavGraph._compute_shortest_paths = lambda self: None
start = time.perf_counter()
graphs = navgraph.load_graphs(data / "connectivity")
loaded = time.perf_counter()
from tasks.splits import load_split
episodes = sum(len(load_split(data, "r2r", split)) for split in ("train", "val_seen", "val_unseen", "test"))
done = time.perf_counter()
print(json.dumps({"graphs": loaded - start, "splits": done - loaded, "scans": len(graphs), "episodes": episodes}))
"""


def measure(code: Path, data: Path, stub: bool) -> dict:
    """One fresh process loading everything from the checkout ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(data), "stub" if stub else "full"], cwd=code, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


FIGURES = (("load 90 graphs (JSON, checks, shortest paths)", False, "graphs"),
           ("load 90 graphs, shortest paths stubbed", True, "graphs"),
           ("load the 4 R2R splits (checks, paths on graphs)", False, "splits"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=shared_data_dir(), help="the real data (graphs, R2R)")
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of the code before validation")
    record.add_arguments(parser, repeats=5)
    args = parser.parse_args(argv)
    if not (args.data_dir / "connectivity" / "scans.txt").exists():
        print(f"no real data at {args.data_dir}; pass --data-dir", file=sys.stderr)
        return 1
    trees = [("this checkout", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    runs: dict[tuple[str, bool], list[dict]] = {(name, stub): [] for name, _ in trees for stub in (False, True)}
    for _ in range(args.repeats):  # interleaved, so a change of the machine's load touches both alike
        for name, code in trees:
            for stub in (False, True):
                runs[name, stub].append(measure(code, args.data_dir, stub))
    first = runs["this checkout", False][0]
    print(f"{first['scans']} scans, {first['episodes']:,d} R2R instructions; baseline: {args.baseline or 'none'}")
    figures = []
    for label, stub, key in FIGURES:
        mine = [r[key] for r in runs["this checkout", stub]]
        base = [r[key] for r in runs["baseline", stub]] if args.baseline else None
        figures.append(record.Figure(label, "s", mine, reference=statistics.median(base) if base else None,
                                     reference_source=f"the same, before validation ({args.baseline})" if base else "",
                                     higher_is_better=False, target="<= 1.1x the baseline",
                                     notes={"baseline": base} if base else {}))
    record.report(figures, args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
