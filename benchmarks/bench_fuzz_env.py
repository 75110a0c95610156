"""The envs under random actions, valid and invalid: nothing is raised and every observation is inside its space.

Actions are drawn per slot: by default 80% among the valid ones (STOP or an unmasked candidate), 10% among the
masked ones inside the action space (padding candidates, or anything once an episode has ended), 10% outside
it (negative, or past the last candidate); ``--invalid-share`` sets the last two together. A masked action is
taken as STOP, so with more invalid actions episodes end after a step or two and the fuzz stays near the
start; with these shares they run for several steps (up to the step cap). Actions sent to a vector env's
finished slots count too (as masked: only STOP is open there). Both worlds are played: the built-in one (its features)
and the real graphs of ``../shared/data`` (zero features: no real feature file covers them); each through the
batched ``VLNVectorEnv`` (train split, 64 episodes at a time) and through ``gymnasium.make`` (val_unseen,
with Gymnasium's TimeLimit and PassiveEnvChecker wrappers, RxR on the built-in world too). Every observation is
checked with ``observation_space.contains``; a reset follows when every episode has ended.

Run: ``python benchmarks/bench_fuzz_env.py [--actions 1000000] [--single-share 0.1] [--data-dir ../shared/data]``;
exits 1 on the first exception or observation outside its space. Figures: actions per second on each world and
env (each repeat plays its own million actions with another seed), and the counts of actions, invalid actions
and failures (target: 0).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium  # noqa: E402

import record  # noqa: E402

import envs  # noqa: E402, F401  (registers the envs)
from envs.datadir import shared_data_dir  # noqa: E402
from envs.gym.vector_env import VLNVectorEnv  # noqa: E402


def draw(rng: np.random.Generator, mask: np.ndarray, invalid: float) -> tuple[np.ndarray, np.ndarray]:
    """One action per row of ``mask`` [B, K + 1] and its class (0 valid, 1 masked in range, 2 out of range)."""
    b, n = mask.shape
    kind = rng.choice(3, size=b, p=[1.0 - invalid, invalid / 2, invalid / 2])
    actions = np.empty(b, dtype=np.int64)
    for i in range(b):
        valid, masked = np.flatnonzero(mask[i]), np.flatnonzero(~mask[i].astype(bool))
        if kind[i] == 1 and not len(masked):
            kind[i] = 2
        if kind[i] == 0 and not len(valid):
            kind[i] = 1 if len(masked) else 2
        if kind[i] == 0:
            actions[i] = rng.choice(valid)
        elif kind[i] == 1:
            actions[i] = rng.choice(masked)
        else:
            actions[i] = rng.integers(-5, 0) if rng.random() < 0.5 else rng.integers(n, n + 10)
    return actions, kind


class Tally:
    def __init__(self, name: str) -> None:
        self.name, self.actions, self.kinds, self.steps, self.resets, self.episodes = name, 0, np.zeros(3, int), 0, 0, 0
        self.seconds = 0.0

    def line(self) -> str:
        return (f"{self.name:44s} {self.actions:>9,d} actions ({self.kinds[0]:,d} valid, {self.kinds[1]:,d} masked, "
                f"{self.kinds[2]:,d} out of range) in {self.steps:,d} steps, {self.resets:,d} resets, "
                f"{self.episodes:,d} episodes ended; {self.actions / max(self.seconds, 1e-9):,.0f} actions/s")


def play(env, single: bool, budget: int, rng: np.random.Generator, name: str, invalid: float) -> Tally:
    """Step ``env`` with random actions until ``budget`` actions are taken, checking every observation and
    reward; a single env is reset when its episode ends, a vector env when all of its episodes have."""
    tally = Tally(name)
    space = env.observation_space
    start = time.perf_counter()
    obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
    tally.resets += 1
    while tally.actions < budget:
        if not space.contains(obs):
            raise AssertionError(f"{name}: observation outside its space after {tally.steps} steps: "
                                 f"{[k for k in obs if not space[k].contains(obs[k])]}")
        mask = obs["action_mask"][None] if single else obs["action_mask"]
        actions, kind = draw(rng, mask.astype(bool), invalid)
        if single:  # as a Python int or a numpy integer, as agents pass them
            action = int(actions[0]) if rng.random() < 0.5 else np.int64(actions[0])
            obs, reward, terminated, truncated, info = env.step(action)
        else:
            obs, reward, terminated, truncated, info = env.step(actions)
        if not np.isfinite(reward).all():
            raise AssertionError(f"{name}: non-finite reward {reward}")
        tally.actions += len(actions)
        tally.kinds += np.bincount(kind, minlength=3)
        tally.steps += 1
        tally.episodes += int(np.sum(terminated | truncated))
        if (terminated or truncated) if single else not info["active"].any():
            obs, _ = env.reset()
            tally.resets += 1
    tally.seconds = time.perf_counter() - start
    env.close()
    return tally


def fuzz(args: argparse.Namespace, seed: int) -> list[Tally]:
    """One run of ``args.actions`` random actions over every world and env, the same loop for each."""
    rng = np.random.default_rng(seed)
    worlds = [("built-in world", None, None)]
    if (args.data_dir / "connectivity" / "scans.txt").exists():
        worlds.append(("real graphs", str(args.data_dir), "none"))
    else:
        print(f"no real data at {args.data_dir}: the built-in world only", file=sys.stderr)
    per_world = args.actions // len(worlds)
    single = int(per_world * args.single_share)
    tallies = []
    for label, data_dir, features in worlds:
        env = VLNVectorEnv(data_dir, "train", features=features, num_envs=64, seed=int(rng.integers(1 << 30)))
        tallies.append(play(env, False, per_world - single, rng, f"{label}: VLNVectorEnv, train", args.invalid_share))
        print(tallies[-1].line(), flush=True)
        ids = ["VLN-R2R-v0"] + (["VLN-RxR-v0"] if data_dir is None else [])
        for env_id in ids:
            env = gymnasium.make(env_id, data_dir=data_dir, split="val_unseen", features=features)
            tallies.append(play(env, True, single // len(ids), rng, f"{label}: gymnasium.make {env_id}, val_unseen",
                                args.invalid_share))
            print(tallies[-1].line(), flush=True)
    return tallies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=1_000_000, help="actions in all, over every env")
    parser.add_argument("--single-share", type=float, default=0.1, help="share of the actions through gymnasium.make")
    parser.add_argument("--invalid-share", type=float, default=0.2, help="share of invalid actions (masked or out of range)")
    parser.add_argument("--data-dir", type=Path, default=shared_data_dir(), help="the real data (graphs, R2R)")
    parser.add_argument("--seed", type=int, default=0)
    record.add_arguments(parser, repeats=1)
    args = parser.parse_args(argv)
    runs: list[list[Tally]] = []
    failed = 0
    for repeat in range(args.repeats):
        try:
            runs.append(fuzz(args, args.seed + repeat))
        except Exception:  # noqa: BLE001 - the finding this benchmark exists to report
            traceback.print_exc()
            print("FAILED: see the exception above", file=sys.stderr)
            failed += 1
            break
    for tallies in runs:
        print(f"total: {sum(t.actions for t in tallies):,d} actions, "
              f"{sum(t.kinds[1] + t.kinds[2] for t in tallies):,d} of them invalid, "
              f"{sum(t.episodes for t in tallies):,d} episodes, nothing raised, every observation inside its space; "
              f"{sum(t.seconds for t in tallies):.0f} s")
    figures = [record.Figure(t.name + ", actions/s", "actions/s", [run[k].actions / run[k].seconds for run in runs])
               for k, t in enumerate(runs[0])] if runs else []
    figures += [
        record.Figure("random actions played, checked", "actions", [sum(t.actions for t in run) for run in runs]
                      or [0], target=f">= {args.actions:,d}"),
        record.Figure("of them invalid (masked or out of range)", "actions",
                      [sum(int(t.kinds[1] + t.kinds[2]) for t in run) for run in runs] or [0]),
        record.Figure("seconds for the whole run", "s", [sum(t.seconds for t in run) for run in runs] or [0],
                      higher_is_better=False),
        record.Figure("exceptions or observations outside their space", "failures", [failed], higher_is_better=False,
                      target="0"),
    ]
    record.report(figures, args.record)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
