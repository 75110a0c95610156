"""Where the V&L commands find their inputs: the data directory's ``vl/`` folder (by default the built-in
world's) and the CLIP grid features of its images, extracted on first use."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from envs.datadir import data_error
from envs.world.builtin import resolve_data_dir
from features.encoders import ENCODERS, Encoder, load_encoder
from features.grid import GridFeatures, extract_grid, grid_shape, image_files, list_images, read_image


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
            raise data_error("--encoder", f"unknown encoder {encoder!r}", f"Choose one of {', '.join(ENCODERS)}")
        images = list_images(vl / "images")
        print(f"Extracting {encoder} grid features of {len(images)} images into {target} (once; a killed run "
              f"resumes)...", file=sys.stderr, flush=True)
        torch.manual_seed(0)
        enc = load_encoder(encoder, weights, device)
        extract_grid(enc, images, target, {"encoder": enc.name, "weights": enc.weights, "seed": 0,
                                           "image_size": enc.image_size, "source": str(vl / "images")},
                     quiet=quiet)
    return GridFeatures(target)


class ImageStore:
    """Images served in the place of grid features, for training through the encoder (end to end):
    :meth:`stack` gives the images preprocessed for ``encoder`` (``[N, 3, S, S]`` float16, in memory), and
    ``dim`` / ``cells`` are the encoder's grid channels and cells, as :class:`features.grid.GridFeatures` has."""

    def __init__(self, folder: str | os.PathLike, encoder: Encoder) -> None:
        self.path = Path(folder)
        self.files = image_files(self.path)
        self.encoder = encoder
        h, w = grid_shape(encoder)
        self.dim, self.cells = encoder.grid_dim, h * w
        self.attrs = {"encoder": encoder.name, "weights": encoder.weights, "end_to_end": 1}

    def stack(self, image_ids: list, what: str = "an image") -> torch.Tensor:
        missing = [i for i in image_ids if str(i) not in self.files]
        if missing:
            raise data_error(self.path, f"has no image with id {missing[0]} for {what} ({len(missing)} missing in all)",
                             "Pass --images the folder holding every question's image")
        with torch.inference_mode():
            return torch.cat([self.encoder.preprocess(read_image(self.files[str(i)])) for i in image_ids]).half()
