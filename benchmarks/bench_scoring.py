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

import record  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402
from envs.kernel.navgraph import move_lengths  # noqa: E402


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


def official_style(references, graphs, results) -> float:
    """Seconds the official scorers' way takes (R2R ``eval.py`` + r4r ``dtw.py``): networkx graphs, all-pairs
    Dijkstra per scan, then a Python loop per episode for NE, SR, SPL and the DTW recursion."""
    import math

    import networkx as nx

    start = time.perf_counter()
    distances = {}
    for scan, graph in graphs.items():
        g = nx.Graph()
        ii, jj = graph.unobstructed.nonzero()
        for i, j, weight in zip(ii, jj, move_lengths(graph.positions[ii], graph.positions[jj]).tolist()):
            g.add_edge(graph.ids[i], graph.ids[j], weight=weight)
        distances[scan] = dict(nx.all_pairs_dijkstra_path_length(g))
    for ref, result in zip(references, results):
        d = distances[ref.scan]
        path = [step[0] for step in result["trajectory"]]
        ne = d[path[-1]][ref.path[-1]]
        length = sum(d[a][b] for a, b in zip(path[:-1], path[1:]))
        shortest = d[ref.path[0]][ref.path[-1]]
        _spl = (ne < 3) * shortest / max(shortest, length, 0.01)
        table = [[math.inf] * (len(ref.path) + 1) for _ in range(len(path) + 1)]
        table[0][0] = 0
        for i in range(1, len(path) + 1):
            for j in range(1, len(ref.path) + 1):
                table[i][j] = d[path[i - 1]][ref.path[j - 1]] + min(table[i - 1][j], table[i][j - 1], table[i - 1][j - 1])
        _ndtw = math.exp(-table[-1][-1] / (3 * len(ref.path)))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=shared_data_dir())
    parser.add_argument("--episodes", type=int, default=4173)
    record.add_arguments(parser)
    args = parser.parse_args(argv)

    from envs.kernel.navgraph import load_graphs
    from eval.score import load_references, read_results, score_results

    references = load_references("r2r", args.data_dir, "train")[: args.episodes]
    graphs = load_graphs(args.data_dir / "connectivity", sorted({r.scan for r in references}))
    results = synthesise(references, graphs)
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.json"
        path.write_text(json.dumps(results))
        for _ in range(args.repeats):
            start = time.perf_counter()
            report = score_results(read_results(path), references, graphs, source=str(path))
            totals.append(time.perf_counter() - start)
    reference = official_style(references, graphs, results)
    print(f"{len(results)} episodes on {len(graphs)} scans; SR {100 * report.summary['success']:.1f}, "
          f"nDTW {100 * report.summary['ndtw']:.1f}")
    record.report([record.Figure(f"read, validate and score {len(results)} episodes", "s", totals, reference,
                                 "the official scorers' way (networkx, Python loops), timed here",
                                 higher_is_better=False, target="well under a few seconds")], args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
