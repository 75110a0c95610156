"""Milliseconds per EnvDrop training iteration and peak memory: follower, speaker and back-translation.

The set-up of the issue that compared this toolkit with R2R-EnvDrop's own code on the project's 2-core
machine: the real graphs and R2R train instructions, random 640-d features, batch 64, 2 threads, EnvDrop's
models and losses. EnvDrop's code measured there: follower (IL + A2C) about 1.47 s per iteration and 4.3 GB
peak, speaker about 0.79 s, a back-translation update (a real and an augmented pass) about 1.9 s. Each repeat
times ``--iters`` iterations after ``--warmup`` ones (the first iterations of an untrained follower walk to the
step cap and are slower)::

    python benchmarks/bench_train.py [--threads 2] [--clock cpu] [--iters 20] [--repeats 3] [--data-dir DATA] [--device cuda]

Without the real data (``$CLIPVIL_SHARED_DATA``) it runs on the built-in world.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record  # noqa: E402
from agents.follower import Follower, FollowerConfig, make_follower_optimizers  # noqa: E402
from agents.rollout import (IterationConfig, RolloutRandom, backtranslation_iteration,  # noqa: E402
                            train_follower_iteration, train_speaker_iteration)
from agents.speaker import Speaker, SpeakerConfig, make_speaker_optimizers  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402

ENVDROP_MS = {"follower": 1470.0, "speaker": 790.0, "back-translation": 1900.0}  # the side-by-side runs
ENVDROP_PEAK_MB = 4300.0


class RandomFeatures:
    """Random [36, D] features for every viewpoint (the real CLIP files are not available here)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def table(self, keys: list[str], dtype=np.float32) -> np.ndarray:
        return np.random.default_rng(0).standard_normal((len(keys), 36, self.dim), dtype=np.float32).astype(dtype)


def make_env(args: argparse.Namespace):
    from envs.gym.vector_env import VLNVectorEnv
    from envs.world import default_world_dir

    data = args.data_dir or (shared_data_dir() if (shared_data_dir() / "R2R").is_dir() else None)
    if data is None:
        return VLNVectorEnv(default_world_dir(), "train", num_envs=args.batch, seed=0, metrics_in_info=False), "world"
    return VLNVectorEnv(data, "train", features=RandomFeatures(args.dim), num_envs=args.batch, seed=0,
                        metrics_in_info=False), str(data)


def timed(step, args: argparse.Namespace) -> list[float]:
    """Mean milliseconds per iteration of each repeat (after the warm-up), by the wall clock or ``--clock cpu``."""
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for _ in range(args.warmup):
        step()
    means = []
    for _ in range(args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = clock()
        for _ in range(args.iters):
            step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        means.append((clock() - start) / args.iters * 1000)
    return means


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64, help="episodes per rollout batch")
    p.add_argument("--dim", type=int, default=640, help="image-feature size (random features)")
    p.add_argument("--iters", type=int, default=20, help="timed iterations per repeat")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory (default: the real data, else the world)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the comparison used 2)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this process's CPU time, steadier than the wall clock on a busy machine (with --threads 1)")
    p.add_argument("--only", nargs="*", choices=list(ENVDROP_MS), default=list(ENVDROP_MS), help="what to time")
    record.add_arguments(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env, where = make_env(args)
    vocab, cfg = env.vocab, IterationConfig()
    random = RolloutRandom(0, args.batch)
    follower = Follower(FollowerConfig(vocab_size=len(vocab), feature_dim=env.feature_dim)).to(args.device)
    f_opts = make_follower_optimizers(follower)
    speaker = Speaker(SpeakerConfig(vocab_size=len(vocab), feature_dim=env.feature_dim)).to(args.device)
    s_opts = make_speaker_optimizers(speaker)
    print(f"{where}: batch {args.batch}, {env.feature_dim}-d features, device {args.device}, "
          f"{torch.get_num_threads()} threads, {args.warmup} + {args.repeats} x {args.iters} iterations", flush=True)
    steps = {
        "follower": lambda: train_follower_iteration(follower, f_opts, env, cfg, random),
        "speaker": lambda: train_speaker_iteration(speaker, s_opts, env),
        "back-translation": lambda: backtranslation_iteration(follower, f_opts, speaker, env, aug, cfg, random),
    }
    from envs.gym.vector_env import EpisodeSampler

    aug = EpisodeSampler(env.episodes, args.batch, seed=1)  # stands for the sampled paths: same houses, lengths
    figures = []
    for name in args.only:
        figures.append(record.Figure(f"{name} iteration (batch {args.batch}, {args.threads} threads)", "ms",
                                     timed(steps[name], args), ENVDROP_MS[name], "R2R-EnvDrop's code, same machine",
                                     higher_is_better=False,
                                     target="<= 370 ms" if name == "follower" else "3x EnvDrop's"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures.append(record.Figure(f"peak memory after the {name} runs", "MB", [peak], ENVDROP_PEAK_MB,
                                     "R2R-EnvDrop's follower, same set-up", higher_is_better=False,
                                     target="<= 2,048 MB"))
        if args.device.startswith("cuda"):
            figures.append(record.Figure(f"peak CUDA memory after the {name} runs", "MB",
                                         [torch.cuda.max_memory_allocated() / 2**20]))
    record.report(figures, args.record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
