"""Benchmark feature extraction: views per second and the share of time spent rendering vs encoding.

Renders the 36 MatterSim views of synthetic skyboxes (``--face-size`` px faces, as the raw Matterport
``_sami.jpg`` are 1024) and encodes them with a random-init CLIP encoder, timing each stage separately::

    python benchmarks/bench_extract.py --encoder RN50 --viewpoints 3 --device cpu
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import record  # noqa: E402
from envs.kernel.skybox import LEVEL_POSE, render_panorama  # noqa: E402
from features.encoders import ENCODERS, load_encoder  # noqa: E402


@dataclass
class BenchConfig:
    encoder: str = "RN50"
    """CLIP variant to time (random init)"""
    viewpoints: int = 5
    """panoramas (36 views each) to time after one warm-up"""
    face_size: int = 1024
    """skybox face side in pixels"""
    batch_size: int = 36
    """images per forward pass"""
    device: str = "cpu"
    """torch device"""
    precision: str = "fp32"
    """fp32, fp16 or bf16"""


def run(config: BenchConfig) -> list[record.Figure]:
    """Time rendering and encoding of ``viewpoints`` panoramas (after one warm-up)."""
    device = torch.device(config.device)
    torch.manual_seed(0)
    encoder = load_encoder(config.encoder, None, device, config.precision)
    faces = torch.randint(0, 256, (6, 3, config.face_size, config.face_size), dtype=torch.uint8, device=device)

    def pose(i: int) -> torch.Tensor:
        """A Matterport-like camera pose: any yaw, about one degree of tilt (a new one per panorama)."""
        yaw, tilt = 0.7 * i, 0.02
        cy, sy, ct, st = math.cos(yaw), math.sin(yaw), math.cos(tilt), math.sin(tilt)
        spin = torch.tensor([[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]])
        lean = torch.tensor([[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]])
        return spin @ lean @ LEVEL_POSE

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    read = encoder.columns_read(640, 480)  # the columns the centre crop reads
    render_times, encode_times = [], []
    views = None
    for i in range(config.viewpoints + 1):  # the first pass warms caches up and is not counted
        start = time.perf_counter()
        views = render_panorama(faces, pose(i), columns=read, out=views)  # [36, 3, 480, 640], as extract does
        sync()
        rendered = time.perf_counter()
        for j in range(0, 36, config.batch_size):
            encoder.pooled(views[j : j + config.batch_size])
        sync()
        if i:
            render_times.append(rendered - start)
            encode_times.append(time.perf_counter() - rendered)
    print(f"{config.encoder} {config.precision} on {config.device} ({torch.get_num_threads()} threads), "
          f"{config.face_size}px faces, {config.viewpoints} panoramas (one value per panorama):")
    totals = [r + e for r, e in zip(render_times, encode_times)]
    return [
        record.Figure(f"extraction views/s ({config.encoder}, {config.device})", "views/s", [36 / t for t in totals]),
        record.Figure("rendering share of extraction time", "%",
                      [100 * r / t for r, t in zip(render_times, totals)], target="<= 5%"),
        record.Figure("render one panorama (36 views)", "ms", [1000 * r for r in render_times],
                      higher_is_better=False),
    ]


def main(argv: list[str] | None = None) -> int:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default=defaults.encoder, choices=ENCODERS, help="CLIP variant (default: %(default)s)")
    parser.add_argument("--viewpoints", type=int, default=defaults.viewpoints, help="timed panoramas (default: %(default)s)")
    parser.add_argument("--face-size", type=int, default=defaults.face_size, help="skybox face side (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per forward (default: %(default)s)")
    parser.add_argument("--device", default=defaults.device, help="torch device (default: %(default)s)")
    parser.add_argument("--precision", default=defaults.precision, choices=("fp32", "fp16", "bf16"),
                        help="model precision (default: %(default)s)")
    record.add_arguments(parser)
    args = vars(parser.parse_args(argv))
    path = args.pop("record")
    args.pop("repeats")  # one value per panorama: --viewpoints sets how many
    record.report(run(BenchConfig(**args)), path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
