"""Where the V&L commands find their inputs: the data directory's ``vl/`` folder (by default the built-in
world's) and the CLIP grid features of its images, extracted on first use."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from envs.datadir import data_error
from envs.world.builtin import resolve_data_dir
from features.encoders import ENCODERS, load_encoder
from features.grid import GridFeatures, extract_grid, list_images


def vl_dir(data_dir: str | os.PathLike | None) -> Path:
    """``DATA/vl`` of the given data directory, or of the built-in world (built on first use)."""
    root = resolve_data_dir(data_dir)
    path = root / "vl"
    if not path.is_dir():
        raise data_error(path, "no V&L data here", "Build a world with V&L data (python -m envs.world --out DIR) "
                         "or pass the question / caption files and --features explicitly")
    return path


def default_features_path(vl: Path, encoder: str) -> Path:
    """Where the grid features of ``vl/images`` by ``encoder`` are kept: ``vl/grid-{encoder}.h5``."""
    return vl / f"grid-{encoder.lower()}.h5"


def open_grid_features(path: str | os.PathLike | None, vl: Path | None, encoder: str = "RN50",
                       weights: str | None = None, device: str = "cpu", quiet: bool = False) -> GridFeatures:
    """The grid feature file ``path``; without one, ``vl/grid-{encoder}.h5``, extracted first (announced, and
    resumable) if the V&L folder has images but no features yet."""
    if path is not None:
        return GridFeatures(path)
    if vl is None:
        raise data_error("--features", "no grid feature file given", "Pass --features FILE.h5 "
                         "(python -m features.extract --grid --images DIR --out FILE.h5)")
    target = default_features_path(vl, encoder)
    if not target.exists():
        if encoder.replace("/", "-") not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
        images = list_images(vl / "images")
        print(f"Extracting {encoder} grid features of {len(images)} images into {target} (once; a killed run "
              f"resumes)...", file=sys.stderr, flush=True)
        torch.manual_seed(0)
        enc = load_encoder(encoder, weights, device)
        extract_grid(enc, images, target, {"encoder": enc.name, "weights": enc.weights, "seed": 0,
                                           "image_size": enc.image_size, "source": str(vl / "images")},
                     quiet=quiet)
    return GridFeatures(target)
