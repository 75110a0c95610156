"""Milliseconds per training step of each V&L task on a batch of 64 grid features, and its peak memory.

Tasks (the paper's sizes by default): ``vqa-pythia`` and ``vqa-mcan`` (6 layers, d 512; 3,129 answers,
20-token questions), ``caption-xe`` (6 + 6 layers, d 512; 18-token captions) and ``caption-scst`` (5 sampled
captions for each of 64 / 5 images, CIDEr-D rewards). Features are RN50's grid, ``[64, 49, 2048]``. Each task
runs in its own process so its peak memory (resident set, and CUDA's allocator on a GPU) is its own.

    python benchmarks/bench_vl.py [--task NAME ...] [--iters 10] [--device cpu|cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASKS = ("vqa-pythia", "vqa-mcan", "caption-xe", "caption-scst")
BATCH, CELLS, DIM, VOCAB, ANSWERS = 64, 49, 2048, 1000, 3129


def make_step(task: str, device: torch.device, layers: int, d: int):
    """A closure doing one optimiser step of ``task`` on random data of the benchmark's shapes."""
    import torch.nn.functional as F

    grid = torch.randn(BATCH, CELLS, DIM, device=device)
    if task.startswith("vqa"):
        from tasks.vqa.models import VQAHeadConfig, make_head

        model = make_head(VQAHeadConfig(head=task.split("-")[1], vocab_size=VOCAB, num_answers=ANSWERS,
                                        feature_dim=DIM, hidden=d, layers=layers)).to(device)
        words = torch.randint(3, VOCAB, (BATCH, 20), device=device)
        target = torch.rand(BATCH, ANSWERS, device=device).lt(0.001).float()
        opt = torch.optim.Adam(model.parameters(), 1e-4)

        def step() -> None:
            loss = F.binary_cross_entropy_with_logits(model(grid, words), target) * ANSWERS
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step, model
    from tasks.captioning.metrics import CiderD
    from tasks.captioning.model import Captioner, CaptionerConfig

    model = Captioner(CaptionerConfig(vocab_size=VOCAB, feature_dim=DIM, d=d, layers=layers)).to(device)
    opt = torch.optim.Adam(model.parameters(), 5e-4)
    words = torch.randint(4, VOCAB, (BATCH, 18), device=device)
    words[:, 0] = model.cfg.bos_id
    if task == "caption-xe":
        def step() -> None:
            logits = model(grid, words[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), words[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return step, model
    images, k = BATCH // 5, 5
    refs = [[" ".join(f"w{int(t)}" for t in row[1:]) for row in words[i * 5 : i * 5 + 5]] for i in range(images)]
    cider = CiderD(refs)

    def step() -> None:
        ids, logp = model.sample(grid[:images], n=k)
        captions = [" ".join(f"w{int(t)}" for t in row if int(t) > 3) for row in ids]
        rewards = torch.tensor([cider.score(c, refs[j // k]) for j, c in enumerate(captions)], device=device)
        rewards = rewards.reshape(images, k)
        baseline = (rewards.sum(1, keepdim=True) - rewards) / (k - 1)
        loss = -((rewards - baseline).reshape(-1) * logp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, model


def run_task(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    step, model = make_step(args.task, device, args.layers, args.d)
    wall = []
    for i in range(args.warmup + args.iters):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            wall.append((time.perf_counter() - start) * 1000)
    out = {"task": args.task, "median_ms": statistics.median(wall), "min_ms": min(wall), "max_ms": max(wall),
           "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", nargs="*", choices=TASKS, default=None, help="tasks to time (default: all)")
    p.add_argument("--iters", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--layers", type=int, default=6, help="MCAN / captioner layers (the paper's 6)")
    p.add_argument("--d", type=int, default=512, help="model size (the paper's 512)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (0: torch's default; 1 by default, as the other benchmarks on a shared "
                        "2-core machine)")
    p.add_argument("--json", action="store_true", help="print one JSON line per task")
    args = p.parse_args(argv)
    if args.task and len(args.task) == 1:  # the child process: time one task
        if args.threads:
            torch.set_num_threads(args.threads)
        args.task = args.task[0]
        print(json.dumps(run_task(args)))
        return 0
    print(f"batch {BATCH} x {CELLS} x {DIM} grid features, {args.layers} layers, d {args.d}, device {args.device}, "
          f"torch threads {args.threads or 'default'}")
    for task in args.task or TASKS:
        cmd = [sys.executable, __file__, "--task", task, "--iters", str(args.iters), "--warmup", str(args.warmup),
               "--layers", str(args.layers), "--d", str(args.d), "--device", args.device, "--threads", str(args.threads)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{task}: failed\n{result.stderr[-2000:]}")
            return 1
        row = json.loads(result.stdout.strip().splitlines()[-1])
        if args.json:
            print(json.dumps(row))
            continue
        cuda = f", peak CUDA {row['peak_cuda_mb']:.0f} MB" if "peak_cuda_mb" in row else ""
        print(f"{task:13s} median {row['median_ms']:8.1f} ms/step (min {row['min_ms']:.1f}, max {row['max_ms']:.1f}), "
              f"{row['params_m']:.1f} M parameters, peak resident {row['peak_rss_mb']:.0f} MB{cuda}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
