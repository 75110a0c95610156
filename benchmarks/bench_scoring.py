"""Score 4,173 synthesised trajectories (the size of R2R's test split) on the real graphs; print the times.

Trajectories are random walks along graph edges from the start of real train paths, with turns in place
(repeated viewpoints) as R2R trajectories record them: 16 steps on average, like the Random agent's.
Target (issue 4): validating and scoring 4,173 episodes well under a few seconds on a 2-core machine.
Run: ``python benchmarks/bench_scoring.py [--data-dir ../shared/data] [--episodes 4173]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.datadir import shared_data_dir  # noqa: E402


def synthesise(references, graphs, seed: int = 0) -> list[dict]:
    """One random-walk trajectory per reference, half its steps turns in place."""
    rng = random.Random(seed)
    results = []
    for ref in references:
        graph = graphs[ref.scan]
        traj = [ref.path[0]]
        for _ in range(rng.randrange(4, 29)):
            here = traj[-1]
            traj.append(rng.choice(graph.neighbours(here)) if rng.random() < 0.5 else here)
        results.append({"instr_id": ref.instr_id, "trajectory": [[vp, 0.0, 0.0] for vp in traj]})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=shared_data_dir())
    parser.add_argument("--episodes", type=int, default=4173)
    args = parser.parse_args(argv)

    from envs.kernel.navgraph import load_graphs
    from eval.metrics import score_episodes
    from eval.score import load_references, read_results, score_results

    start = time.perf_counter()
    references = load_references("r2r", args.data_dir, "train")[: args.episodes]
    graphs = load_graphs(args.data_dir / "connectivity", sorted({r.scan for r in references}))
    setup = time.perf_counter() - start
    results = synthesise(references, graphs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.json"
        path.write_text(json.dumps(results))
        start = time.perf_counter()
        loaded = read_results(path)
        read = time.perf_counter() - start
    start = time.perf_counter()
    report = score_results(loaded, references, graphs, source=str(path))
    scoring = time.perf_counter() - start
    start = time.perf_counter()
    trajectories = [[s[0] for s in r["trajectory"]] for r in results]
    score_episodes(trajectories, [r.path for r in references], [graphs[r.scan] for r in references])
    metrics_only = time.perf_counter() - start
    steps = sum(len(r["trajectory"]) - 1 for r in results) / len(results)
    total = read + scoring
    print(f"episodes           {len(results)} ({len(graphs)} scans, {steps:.1f} steps per trajectory)")
    print(f"episodes + graphs  {setup:.2f} s  (not counted: loaded once per process)")
    print(f"read results       {read:.3f} s")
    print(f"validate + score   {scoring:.3f} s  (metrics alone {metrics_only:.3f} s, "
          f"{1e6 * metrics_only / len(results):.0f} us per episode)")
    print(f"total              {total:.3f} s  (target: well under a few seconds)")
    print(f"summary            SR {100 * report.summary['success']:.1f}  nDTW {100 * report.summary['ndtw']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
