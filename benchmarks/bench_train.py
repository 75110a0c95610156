"""Milliseconds per EnvDrop training iteration (IL rollout + A2C rollout + one optimiser step) and peak memory.

Reference (design.md, measured on the project's 2-core CPU): EnvDrop's follower takes about 1.1 s per
iteration at batch 64 with 640-d features, 4.2 GB peak; its speaker 0.7 s; a back-translation pass 1.9 s.

    python benchmarks/bench_train.py [--batch 64] [--iters 10] [--device cpu|cuda] [--speaker] [--bt]

Runs on the built-in world (640-d features, built once into the cache) through ``envs.gym.vector_env``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.follower import Follower, FollowerConfig, make_follower_optimizers  # noqa: E402
from agents.rollout import (IterationConfig, backtranslation_iteration, train_follower_iteration,  # noqa: E402
                            train_speaker_iteration)
from agents.speaker import Speaker, SpeakerConfig, make_speaker_optimizers  # noqa: E402


def make_env(data_dir: Path | None, batch: int, split: str = "train"):
    from envs.gym.vector_env import VLNVectorEnv
    from envs.world import default_world_dir

    return VLNVectorEnv(data_dir or default_world_dir(), split, num_envs=batch, seed=0)


def timed(fn, iters: int, warmup: int, device: str) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU milliseconds of each timed call (CPU time is robust to a busy machine)."""
    wall, cpu = [], []
    for i in range(warmup + iters):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            wall.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64, help="episodes per rollout batch")
    p.add_argument("--iters", type=int, default=10, help="timed iterations")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--data-dir", type=Path, default=None, help="data directory (default: the built-in world)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (0: torch's default). 1 by default: on a shared 2-core machine two "
                        "OpenMP threads spin against other processes and run several times slower")
    p.add_argument("--speaker", action="store_true", help="also time a speaker iteration")
    p.add_argument("--bt", action="store_true", help="also time a back-translation iteration")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    env = make_env(args.data_dir, args.batch)
    vocab = env.vocab
    follower = Follower(FollowerConfig(vocab_size=len(vocab), feature_dim=env.feature_dim,
                                       pad_id=vocab.pad_id)).to(args.device)
    opts = make_follower_optimizers(follower)
    cfg = IterationConfig()
    print(f"batch {args.batch}, features {env.feature_dim}-d, device {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    rows = [("follower IL+A2C", timed(lambda: train_follower_iteration(follower, opts, env, cfg),
                                      args.iters, args.warmup, args.device))]
    if args.speaker or args.bt:
        speaker = Speaker(SpeakerConfig(vocab_size=len(vocab), feature_dim=env.feature_dim,
                                        pad_id=vocab.pad_id)).to(args.device)
        s_opts = make_speaker_optimizers(speaker)
        if args.speaker:
            rows.append(("speaker", timed(lambda: train_speaker_iteration(speaker, s_opts, env),
                                          args.iters, args.warmup, args.device)))
        if args.bt:
            aug = make_env(args.data_dir, args.batch)
            rows.append(("back-translation (2 passes)",
                         timed(lambda: backtranslation_iteration(follower, opts, speaker, env, aug, cfg),
                               args.iters, args.warmup, args.device)))
    for name, (wall, cpu) in rows:
        print(f"{name:28s} median {statistics.median(wall):8.1f} ms/iter wall (min {min(wall):.1f}), "
              f"{statistics.median(cpu):8.1f} ms CPU time")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak_mb:.0f} MB")
    if args.device == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
