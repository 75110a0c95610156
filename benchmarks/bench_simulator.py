"""Speed of the simulator: env-steps per second of a random agent (makeAction + getState) on the real graphs.

The reference is the real MatterSim (C++, rendering off): about 300,000 env-steps/s at batch 64 on the
project's 2-core machine. Each step here reads every state's ``navigableLocations`` (to pick a legal
action), as an agent does::

    python benchmarks/bench_simulator.py [--conn-dir ../shared/data/connectivity] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402
from envs.kernel.backends import make_r2r_simulator  # noqa: E402

MATTERSIM_STEPS_PER_S = 300_000


@dataclass
class BenchConfig:
    conn_dir: str = str(shared_data_dir() / "connectivity")
    """folder with {scan}_connectivity.json and scans.txt"""
    batch_size: int = 64
    """episodes stepped together"""
    steps: int = 2000
    """batch steps to time (after a short warm-up)"""
    seed: int = 0
    """seed of the random starts and actions"""
    discretized: bool = True
    """discretized viewing angles (R2R); off: continuous turns"""
    repeats: int = 3
    """times the figure is measured"""
    record: str | None = None
    """also write the figures as JSON here"""


def parse_args(argv: list[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = BenchConfig()
    parser.add_argument("--conn-dir", default=defaults.conn_dir, help="connectivity folder (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="episodes per batch (%(default)s)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="batch steps to time (%(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed (%(default)s)")
    parser.add_argument("--continuous", action="store_true", help="continuous turns instead of discretized views")
    record.add_arguments(parser)
    a = parser.parse_args(argv)
    return BenchConfig(a.conn_dir, a.batch_size, a.steps, a.seed, not a.continuous, a.repeats, a.record)


def run(cfg: BenchConfig) -> dict:
    """Time ``cfg.steps`` random batch steps; returns steps/s and the ratio to MatterSim."""
    sim = make_r2r_simulator(cfg.conn_dir, batch_size=cfg.batch_size, initialize=False)
    sim.setDiscretizedViewingAngles(cfg.discretized)
    t0 = time.perf_counter()
    sim.initialize()
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(cfg.seed)
    edges = sim.edges
    starts = [(scan, vp) for scan in edges.scans for vp in edges.graphs[scan].included_ids]
    pick = rng.choice(len(starts), cfg.batch_size)
    sim.newEpisode([starts[i][0] for i in pick], [starts[i][1] for i in pick],
                   rng.uniform(0, 2 * math.pi, cfg.batch_size).tolist(), [0.0] * cfg.batch_size)
    zeros = [0.0] * cfg.batch_size

    def step(u: np.ndarray, turn: list[float]) -> None:
        states = sim.getState()
        index = [int(x * len(s.navigableLocations)) for x, s in zip(u, states)]
        sim.makeAction(index, turn, zeros)

    uniforms = rng.random((cfg.steps + 50, cfg.batch_size)).tolist()
    turns = rng.choice([-1.0, 0.0, 1.0], (cfg.steps + 50, cfg.batch_size)).tolist()
    for t in range(50):
        step(uniforms[t], turns[t])
    t0, c0 = time.perf_counter(), time.process_time()
    for t in range(50, cfg.steps + 50):
        step(uniforms[t], turns[t])
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = cfg.steps * cfg.batch_size / elapsed
    # CPU time too: on a shared machine the wall clock also counts other processes' turns
    return {"config": asdict(cfg), "load_s": load_s, "env_steps_per_s": rate,
            "ratio_to_mattersim": rate / MATTERSIM_STEPS_PER_S, "us_per_batch_step": elapsed / cfg.steps * 1e6,
            "env_steps_per_cpu_s": cfg.steps * cfg.batch_size / cpu}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    runs = [run(cfg) for _ in range(cfg.repeats)]
    print(f"loaded {cfg.conn_dir} in {runs[0]['load_s']:.2f} s; batch {cfg.batch_size}, {cfg.steps} steps per repeat")
    # per CPU second: on a shared machine the wall clock also counts other processes' turns
    record.report([
        record.Figure(f"simulator env-steps/s (batch {cfg.batch_size}, CPU time)", "steps/s",
                      [r["env_steps_per_cpu_s"] for r in runs], MATTERSIM_STEPS_PER_S,
                      "real MatterSim, C++, rendering off, design.md"),
        record.Figure(f"simulator env-steps/s (batch {cfg.batch_size}, wall)", "steps/s",
                      [r["env_steps_per_s"] for r in runs], MATTERSIM_STEPS_PER_S,
                      "real MatterSim, C++, rendering off, design.md"),
    ], cfg.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
