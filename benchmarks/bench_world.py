"""The built-in world's own numbers: build time, size, and the teacher's and a random agent's scores.

Builds the default world (seed 0) into a temporary folder, then plays the shortest-path teacher and a
uniformly random agent (a random valid candidate each step, STOP with probability 1/(candidates + 1)) on
val_seen and val_unseen through the batched env. The teacher must reach SR 100%; a random agent must score low.

Run: ``python benchmarks/bench_world.py [--seed 0]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record  # noqa: E402


def play(env, policy: str, rng: np.random.Generator) -> dict[str, float]:
    """Mean SR / NE / SPL of ``policy`` (teacher or random) over every episode of the env's split."""
    from eval.metrics import aggregate

    rows = []
    for options in env.iter_batches():
        obs, info = env.reset(options=options)
        for _ in range(env.max_steps):
            if policy == "teacher":
                actions = info["teacher_action"]
            else:
                mask = obs["action_mask"]
                actions = (rng.random(mask.shape) * mask).argmax(1)
            obs, _, _, _, info = env.step(actions)
            if not info["active"].any():
                break
        rows += [m for m in env.metrics()[: options["count"]] if m is not None]
    return aggregate(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    record.add_arguments(parser, repeats=1)
    args = parser.parse_args(argv)
    from envs.gym.vector_env import VLNVectorEnv
    from envs.world import WorldConfig, build_world

    builds, scores = [], {}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            summary = build_world(Path(tmp) / "world", WorldConfig(seed=args.seed))
            builds.append(time.perf_counter() - start)
            print(summary.describe(), flush=True)
            rng = np.random.default_rng(args.seed)
            for split in ("val_seen", "val_unseen"):
                env = VLNVectorEnv(summary.out, split, num_envs=64, seed=args.seed, metrics_in_info=False)
                for policy in ("teacher", "random"):
                    scores.setdefault((split, policy), []).append(100 * play(env, policy, rng)["success"])
    figures = [record.Figure("build the built-in world", "s", builds, higher_is_better=False)]
    for (split, policy), values in scores.items():
        figures.append(record.Figure(f"world {split}: {policy} agent SR", "%", values,
                                     target="100%" if policy == "teacher" else "low"))
    record.report(figures, args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
