"""CLIP grid features of images (``python -m features.extract --grid``): what VQA and captioning read.

Each image's :meth:`features.encoders.Encoder.grid` (the ResNet's last feature map before attention pooling,
or the ViT's patch tokens) is stored as ``[h * w, C]`` (row-major cells) under the image's id in an HDF5 file
written by :class:`features.hdf5.HDF5FeatureWriter` (so a killed run resumes where it stopped). The file's
attributes name the encoder, its weights, the image settings, ``grid_h`` and ``grid_w``.

An image's id is the number its file name ends with (``COCO_train2014_000000458752.jpg`` -> ``458752``, the
built-in world's ``000000000001.jpg`` -> ``1``), else the file name without its suffix.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from envs.datadir import data_error
from features.encoders import Encoder
from features.hdf5 import HDF5FeatureWriter

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
GRID_VERSION = 1


def image_key(path: str | os.PathLike) -> str:
    """The id an image is stored under: the trailing number of its stem (leading zeros dropped), else the stem."""
    stem = Path(path).stem
    match = re.search(r"(\d+)$", stem)
    return str(int(match.group(1))) if match else stem


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The images of ``folder`` (``.jpg``, ``.jpeg``, ``.png``), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise data_error(folder, "image folder not found", "Pass --images a folder of .jpg/.png images")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise data_error(folder, "holds no .jpg/.png images", "Pass --images the folder the images are in")
    keys = [image_key(p) for p in images]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise data_error(folder, f"two images share the id {dup!r}", "Give every image a distinct number or name")
    return images


def image_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Image id -> file of every image in ``folder`` (ids as :func:`image_key` reads them)."""
    return {image_key(p): p for p in list_images(folder)}


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """An image file as uint8 RGB ``[3, H, W]``; an unreadable file is a :class:`DataError` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise data_error(path, "image not found", "Check the image folder and the file names") from None
    except (OSError, UnidentifiedImageError) as error:
        raise data_error(path, f"cannot be decoded as an image ({error})", "Replace the file") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def grid_shape(encoder: Encoder) -> tuple[int, int]:
    """``(h, w)`` of the encoder's grid for its input size (7 x 7 for RN50 at 224, ViT-B/32 at 224)."""
    patch = 32 if encoder.name in ("RN50", "RN101", "RN50x4", "ViT-B-32") else 16
    return encoder.image_size // patch, encoder.image_size // patch


def grid_tokens(grid: torch.Tensor) -> torch.Tensor:
    """``[B, C, h, w]`` -> ``[B, h * w, C]`` (row-major cells): the layout files and models use."""
    return grid.flatten(2).transpose(1, 2)


@dataclass
class GridStats:
    images: int = 0
    skipped: int = 0  # done by an earlier run
    written: int = 0
    seconds: float = 0.0


def extract_grid(encoder: Encoder, images: list[Path], out: Path, attrs: dict, batch_size: int = 32,
                 dtype: type = np.float16, quiet: bool = False) -> GridStats:
    """Write the grid features of ``images`` into ``out`` (resuming an interrupted run)."""
    h, w = grid_shape(encoder)
    attrs = attrs | {"grid_h": h, "grid_w": w, "features": "CLIP grid features [h*w, C], row-major cells",
                     "grid_version": GRID_VERSION}
    stats = GridStats(images=len(images))
    start = time.perf_counter()
    with HDF5FeatureWriter(out, encoder.grid_dim, attrs, dtype=dtype, rows=h * w, flush_every=batch_size) as writer:
        todo = [p for p in images if image_key(p) not in writer]
        stats.skipped = len(images) - len(todo)
        bar = tqdm(total=len(todo), desc=f"{encoder.name} grid", unit="img", disable=quiet)
        for i in range(0, len(todo), batch_size):
            chunk = todo[i : i + batch_size]
            pictures = [read_image(p) for p in chunk]
            sizes = {tuple(p.shape) for p in pictures}
            batches = [torch.stack(pictures)] if len(sizes) == 1 else [p[None] for p in pictures]
            grids = torch.cat([grid_tokens(encoder.grid(b)) for b in batches])  # [b, h*w, C]
            if grids.shape[1] != h * w:
                raise ValueError(f"{encoder.name} gave a {grids.shape[1]}-cell grid, expected {h}x{w}")
            for path, grid in zip(chunk, grids.cpu().numpy()):
                writer.write_key(image_key(path), grid)
            stats.written += len(chunk)
            bar.update(len(chunk))
        bar.close()
    stats.seconds = time.perf_counter() - start
    return stats


class GridFeatures:
    """Read grid features written by :func:`extract_grid`: ``features[image_id] -> [h * w, C]`` float32."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise data_error(self.path, "grid feature file not found",
                             "Extract one with python -m features.extract --grid --images DIR --out FILE.h5")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as error:
            raise data_error(self.path, f"not a readable HDF5 file ({error})", "Extract it again") from None
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v)
                      for k, v in self._file.attrs.items()}
        if "grid_h" not in self.attrs:
            raise data_error(self.path, "holds no grid features (no grid_h attribute; panorama features?)",
                             "Extract grid features with python -m features.extract --grid")
        self.dim = int(self.attrs["dim"])
        self.cells = int(self.attrs["grid_h"]) * int(self.attrs["grid_w"])
        self._keys = set(self._file.keys())

    def __contains__(self, image_id: object) -> bool:
        return str(image_id) in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, image_id: object) -> np.ndarray:
        return self._file[str(image_id)][()].astype(np.float32)

    def stack(self, image_ids: list, what: str = "an image") -> torch.Tensor:
        """``[N, h * w, C]`` float16 tensor of the given images (in memory: training reads it every step).

        An id without features is a :class:`DataError` naming the id and the file.
        """
        missing = [i for i in image_ids if str(i) not in self._keys]
        if missing:
            raise data_error(self.path, f"has no grid features for {what} with image id {missing[0]} "
                             f"({len(missing)} missing in all)",
                             "Extract the features of every image the annotations name (features.extract --grid)")
        out = torch.empty(len(image_ids), self.cells, self.dim, dtype=torch.float16)
        for row, image_id in enumerate(image_ids):
            out[row] = torch.from_numpy(self._file[str(image_id)][()])
        return out

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> GridFeatures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
