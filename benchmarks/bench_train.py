"""Milliseconds per EnvDrop training iteration and peak memory: follower, speaker and back-translation.

The set-up in which this toolkit is compared with R2R-EnvDrop's own code on the project's 2-core machine: the
real graphs and R2R train instructions, random 640-d features, batch 64, 2 threads, EnvDrop's models and
losses, untrained models. The validation envs are built too, as ``agents.train`` holds them, so the peak
memory is a training run's. Each repeat times ``--iters`` iterations after ``--warmup`` ones::

    python benchmarks/bench_train.py [--threads 2] [--clock cpu] [--iters 20] [--repeats 3] [--data-dir DATA] [--device cuda]
                                     [--feature-dtype float16] [--observations features]

The env runs in ``indices`` mode, as ``agents.train``'s does (the agents gather the features on their device);
``--observations features`` times the env copying them instead. With ``--device cuda`` it also counts, over one
more iteration, how often the host waits for the GPU and which lines wait. With all three timed it projects the
paper's schedule (80k speaker, 80k follower, 100k back-translation iterations) from the medians.

The references are EnvDrop's code (airsplay/R2R-EnvDrop ``r2r_src``, patched only to run on a CPU with
today's torch, with this toolkit's simulator standing in for MatterSim), timed with the same set-up on each kind
of machine the project has been developed on (``ENVDROP``), since a ratio between two machines means nothing. On
a CPU of another kind the figures print without a ratio: ``envdrop_reference.py`` times EnvDrop's code there.
The simulator's share is left out of the references: MatterSim's C++ would take less time than the stand-in, so
a ratio against them is a lower bound.

Without the real data (``$CLIPVIL_SHARED_DATA``) it runs on the built-in world.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record  # noqa: E402
from agents.follower import Follower, FollowerConfig, make_follower_optimizers  # noqa: E402
from agents.observe import host_waits  # noqa: E402
from agents.rollout import (IterationConfig, RolloutRandom, backtranslation_iteration,  # noqa: E402
                            train_follower_iteration, train_speaker_iteration)
from agents.speaker import Speaker, SpeakerConfig, make_speaker_optimizers  # noqa: E402
from agents.train_config import PAPER_BUDGET  # noqa: E402
from envs.datadir import shared_data_dir  # noqa: E402

@dataclass(frozen=True)
class EnvDropTiming:
    """R2R-EnvDrop's code timed on one kind of CPU: ms per iteration with the stand-in simulator's time left out
    (follower, speaker, back-translation), and the peak memory of its follower (without validation envs)."""

    date: str
    protocol: str
    ms: dict[str, float]
    peak_mb: float


# keyed by the start of record.cpu()'s name for the CPU (2 threads, batch 64); the iterations timed, counted from 1,
# with EnvDrop's candidate cache filling as in a fresh run (a pre-filled cache changes mostly the simulator's share)
COLD = "iterations 6-25 (back-translation 6-15)"
ENVDROP = {
    "AMD EPYC": EnvDropTiming(  # AVX2, no AVX-512; total per iteration minus the stand-in simulator's share
        "2026-11-30", COLD, {"follower": 7655.0 - 2381.0, "speaker": 3213.0 - 1098.0,
                             "back-translation": 21716.0 - 7310.0}, 2948.0),
    "Intel(R) Xeon(R) Processor (AVX-512, AMX)": EnvDropTiming(  # the mean of two runs an hour apart (05:50, 06:50)
        "2026-12-01", COLD, {"follower": ((2761.4 - 725.2) + (2603.1 - 669.0)) / 2,
                             "speaker": ((1170.0 - 319.4) + (1136.1 - 310.1)) / 2,
                             "back-translation": ((8015.7 - 2229.7) + (7106.2 - 1982.4)) / 2}, 2973.0),
}


def envdrop_timing(cpu: str) -> EnvDropTiming | None:
    """EnvDrop's timing on this kind of CPU, or None where it was never timed."""
    return next((timing for kind, timing in ENVDROP.items() if cpu.startswith(kind)), None)


STAGES = ("follower", "speaker", "back-translation")
PAPER_ITERS = {"speaker": PAPER_BUDGET["speaker_iters"], "follower": PAPER_BUDGET["iters"],
               "back-translation": PAPER_BUDGET["bt_iters"]}  # agents.train's budgets with --data-dir


class RandomFeatures:
    """Random [36, D] features for every viewpoint (the real CLIP files are not available here), read into
    the env's feature bank as a feature file is (one reservation for all ``total`` panoramas, no copies)."""

    def __init__(self, dim: int, total: int) -> None:
        self.dim, self.total = dim, total
        self.rng = np.random.default_rng(0)

    def layout(self) -> tuple[int, int]:
        return self.total, self.dim

    def fill(self, keys: list[str], out: np.ndarray) -> None:
        # float16 values in either bank, so that --feature-dtype float16 holds the same numbers and the agents
        # take the same steps (the same work to time); drawn a block at a time
        for start in range(0, len(out), 1024):
            out[start:start + 1024] = self.rng.standard_normal(out[start:start + 1024].shape,
                                                               dtype=np.float32).astype(np.float16)


def make_env(args: argparse.Namespace):
    """The training env, with the two validation envs ``agents.train`` also holds (for the peak memory)."""
    from envs.gym.vector_env import VLNVectorEnv
    from envs.kernel.navgraph import read_scans_txt
    from envs.world import default_world_dir

    data = args.data_dir or (shared_data_dir() if (shared_data_dir() / "R2R").is_dir() else None)
    if data is None:
        data, options = default_world_dir(), {}
    else:
        panoramas = sum(len(json.loads((data / "connectivity" / f"{scan}_connectivity.json").read_text()))
                        for scan in read_scans_txt(data / "connectivity"))  # without building 90 graphs
        options = {"features": RandomFeatures(args.dim, panoramas)}
    options.update(feature_dtype=args.feature_dtype, observation_mode=args.observations)
    env = VLNVectorEnv(data, "train", num_envs=args.batch, seed=0, metrics_in_info=False, **options)
    env.validation = [VLNVectorEnv(data, split, num_envs=args.batch, shuffle=False, metrics_in_info=False, **options)
                      for split in ("val_seen", "val_unseen")]
    return env, str(data)


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
    p.add_argument("--feature-dtype", choices=["float32", "float16"], default="float32",
                   help="how the env holds the feature table (agents.train --feature-dtype)")
    p.add_argument("--observations", choices=["indices", "features"], default="indices",
                   help="the env's observation mode: indices (agents.train's: the agent gathers the features on "
                        "its device) or features (the env copies them)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the comparison used 2)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: this process's CPU time, steadier than the wall clock on a busy machine (with --threads 1)")
    p.add_argument("--only", nargs="*", choices=STAGES, default=list(STAGES), help="what to time")
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
    print(f"{where}: batch {args.batch}, {env.feature_dim}-d {args.feature_dtype} features ({args.observations} "
          f"mode), device {args.device}, "
          f"{torch.get_num_threads()} threads, {args.warmup} + {args.repeats} x {args.iters} iterations", flush=True)
    steps = {
        "follower": lambda: train_follower_iteration(follower, f_opts, env, cfg, random),
        "speaker": lambda: train_speaker_iteration(speaker, s_opts, env),
        "back-translation": lambda: backtranslation_iteration(follower, f_opts, speaker, env, aug, cfg, random),
    }
    from envs.gym.vector_env import EpisodeSampler

    aug = EpisodeSampler(env.episodes, args.batch, seed=1)  # stands for the sampled paths: same houses, lengths
    figures, times = [], {}
    cpu = record.cpu()
    envdrop = envdrop_timing(cpu) if args.device == "cpu" and args.threads == 2 else None
    if envdrop is None:
        print(f"no EnvDrop timing for {cpu} on {args.device} with {args.threads} threads: figures without ratios")
    for name in args.only:
        figures.append(record.Figure(f"{name} iteration (batch {args.batch}, {args.threads} threads)", "ms",
                                     timed(steps[name], args), envdrop and envdrop.ms[name],
                                     f"R2R-EnvDrop's code on {cpu}, simulator time left out ({envdrop.date}, "
                                     f"{envdrop.protocol})" if envdrop else "",
                                     higher_is_better=False,
                                     target="4x EnvDrop's" if name == "follower" else "3x EnvDrop's"))
        times[name] = figures[-1].median
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures.append(record.Figure(f"peak memory after the {name} runs", "MB", [peak], envdrop and envdrop.peak_mb,
                                     "R2R-EnvDrop's follower (no validation envs)" if envdrop else "",
                                     higher_is_better=False, target="<= 2,048 MB"))
        if args.device.startswith("cuda"):
            figures.append(record.Figure(f"peak CUDA memory after the {name} runs", "MB",
                                         [torch.cuda.max_memory_allocated() / 2**20]))
            where, stats = host_waits(steps[name])  # one more iteration; rollout steps: the follower's (speaker 0)
            rollout_steps = sum(v for k, v in stats.items() if k.endswith("/steps"))
            figures.append(record.Figure(f"{name}: host waits for the GPU per iteration", "waits", [where.total()],
                                         notes={"rollout steps": rollout_steps, "lines": dict(where.most_common())}))
            print(f"{name}: {where.total()} waits over {rollout_steps:.0f} rollout steps, most at "
                  + ", ".join(f"{line} ({n})" for line, n in where.most_common(6)), flush=True)
    record.report(figures, args.record)
    if len(times) == len(PAPER_ITERS):
        hours = sum(PAPER_ITERS[name] * times[name] for name in PAPER_ITERS) / 3.6e6
        print(f"the paper's schedule (80k speaker, 80k follower, 100k back-translation iterations) at these "
              f"medians: {hours:,.1f} hours, validation not counted")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
