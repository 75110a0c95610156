"""Agent-steps per second of the batched env at batch 64 with 640-d features, on the real graphs.

Does a training step's real work: move (with the recorded turns), build the candidate features
(view feature + angle feature), gather the 36 view features, compute the teacher action and the reward.
Features are random (the real CLIP files are not available here). The reference figure is EnvDrop's batch env
over the real MatterSim doing the same work, about 12,000 agent-steps/s on this 2-core machine (design.md);
the target is 10x that.

Run: ``python benchmarks/bench_vector_env.py [--data-dir ../shared/data] [--steps 20000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402

ENVDROP_AGENT_STEPS_PER_S = 12_000


class RandomFeatures:
    """A stand-in feature source: random [36, D] blocks for every requested key."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim, self.seed = dim, seed

    def table(self, keys: list[str], dtype=np.float32) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.standard_normal((len(keys), 36, self.dim), dtype=np.float32).astype(dtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=shared_data_dir())
    parser.add_argument("--split", default="val_unseen")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=640)
    parser.add_argument("--steps", type=int, default=20_000, help="agent-steps to time")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--mode", default="both", choices=["features", "indices", "both"],
                        help="features: the env copies the feature arrays into every observation; "
                             "indices: it hands out table indices and the agent gathers (the fast path)")
    record.add_arguments(parser)
    args = parser.parse_args(argv)
    figures = []
    for mode in ["features", "indices"] if args.mode == "both" else [args.mode]:
        rates = [run(args, mode) for _ in range(args.repeats)]
        figures.append(record.Figure(f"vector env agent-steps/s ({mode} mode, batch {args.batch})", "steps/s", rates,
                                     ENVDROP_AGENT_STEPS_PER_S, "EnvDrop's batch env over MatterSim, design.md",
                                     target=">= 10x EnvDrop's"))
    record.report(figures, args.record)
    return 0


def run(args: argparse.Namespace, mode: str) -> float:
    """Agent-steps per second of one timed run (``args.steps`` steps)."""
    from envs.gym.vector_env import VLNVectorEnv

    t0 = time.perf_counter()
    env = VLNVectorEnv(args.data_dir, args.split, features=RandomFeatures(args.dim), num_envs=args.batch,
                       seed=0, feature_dtype=args.dtype, observation_mode=mode, metrics_in_info=False)
    setup = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    done_steps, t0 = 0, time.perf_counter()
    while done_steps < args.steps:
        obs, info = env.reset()
        for _ in range(env.max_steps):
            mask = obs["action_mask"]
            # mostly the teacher's move, sometimes a random valid candidate, as a learning agent does
            actions = info["teacher_action"].copy()
            explore = rng.random(args.batch) < 0.3
            random_pick = (rng.random(mask.shape) * mask).argmax(1)
            actions[explore] = random_pick[explore]
            active = info["active"].sum()
            obs, reward, term, trunc, info = env.step(actions)
            done_steps += int(active)
            if not info["active"].any():
                break
    seconds = time.perf_counter() - t0
    print(f"[{mode}] setup (graphs, candidates, {args.dim}-d features of {len(env.data.tables.keys)} viewpoints) "
          f"{setup:.1f} s; {done_steps} steps in {seconds:.2f} s", flush=True)
    return done_steps / seconds


if __name__ == "__main__":
    raise SystemExit(main())
