"""Precomputed panoramic image features: read HDF5 or legacy TSV files, write HDF5 safely.

A feature file maps a key ``f"{scan}_{viewpoint}"`` to a float array ``[36, D]``: one D-dim vector per
discretized view, in MatterSim's view order (``viewIndex = heading_index + 12 * elevation_index``).

Two layouts are read, chosen by the file's suffix:

* HDF5 (``.h5``/``.hdf5``, the modern one): one dataset per key, shape ``[36, D]``, float32 or float16;
  file attributes name the encoder, its weights, the image settings and ``format_version``.
* Legacy TSV (``.tsv``, as R2R / EnvDrop / CLIP-ViL released them): tab-separated rows
  ``scanId, viewpointId, image_w, image_h, vfov, features`` without a header, where ``features`` is the
  base64 of float32 ``[36, D]`` in C order. Files reach several GB, so the reader scans once for byte
  offsets and decodes a row only when it is asked for.

Both readers are lazy; :meth:`FeatureStore.table` makes the dense copy an environment gathers from.
Writing: :class:`features.h5writer.HDF5FeatureWriter` (kill-safe HDF5) and :func:`features.tsv.write_tsv`,
both importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from envs.datadir import DataError, data_error

VIEWS = 36  # discretized views per panorama: 12 headings x 3 elevations
FORMAT_VERSION = 1  # of the HDF5 layout written by HDF5FeatureWriter
JOURNAL_MAGIC = b"CLIPVIL-FEATURE-JOURNAL-1\n"
TSV_COLUMNS = ("scanId", "viewpointId", "image_w", "image_h", "vfov", "features")


def feature_key(scan: str, viewpoint: str) -> str:
    """The key of one panorama in every feature file: ``f"{scan}_{viewpoint}"``."""
    return f"{scan}_{viewpoint}"


class FeatureStore:
    """A read-only, lazily loaded map from ``"scan_viewpoint"`` keys to float32 ``[36, D]`` arrays.

    Subclasses fill ``path``, ``dim``, ``attrs`` and implement ``keys`` and ``_read``.
    """

    path: Path
    dim: int  # D, the size of one view's feature
    attrs: dict[str, Any]

    def keys(self) -> list[str]:
        """Every key in the file, as ``"scan_viewpoint"`` strings."""
        raise NotImplementedError

    def _read(self, key: str) -> np.ndarray:
        """The stored array of an existing key, shape [36, D], in its stored dtype."""
        raise NotImplementedError

    def __contains__(self, key: object) -> bool:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def _missing(self, key: str) -> DataError:
        return data_error(
            self.path,
            f"no features for key {key!r} (scan_viewpoint)",
            "Extract features for this scan (python -m features.extract) or point --features at a file that covers it",
        )

    def __getitem__(self, key: str) -> np.ndarray:
        """Features of one panorama as float32 ``[36, D]``; a missing key raises :class:`DataError`."""
        if key not in self:
            raise self._missing(key)
        return np.asarray(self._read(key), dtype=np.float32)

    def get(self, scan: str, viewpoint: str) -> np.ndarray:
        """Features of viewpoint ``viewpoint`` in scan ``scan`` as float32 ``[36, D]``."""
        return self[feature_key(scan, viewpoint)]

    def table(self, keys: list[str], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """A dense copy ``[K, 36, D]`` of ``keys`` in that order, so an env can gather rows by index.

        Every key is checked before any is read, so a missing one fails at once rather than after
        minutes of decoding.
        """
        for key in keys:
            if key not in self:
                raise self._missing(key)
        out = np.empty((len(keys), VIEWS, self.dim), dtype=dtype)  # (K, 36, D)
        for i in self._read_order(keys):
            out[i] = self._read(keys[i])
        return out

    def _read_order(self, keys: list[str]) -> Iterable[int]:
        """Order in which ``table`` reads the keys; TSV overrides it to read the file front to back."""
        return range(len(keys))

    def close(self) -> None:
        """Release the open file."""

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, keys={len(self)}, dim={self.dim})"


def open_features(path: str | os.PathLike) -> FeatureStore:
    """Open a feature file lazily, choosing the reader by suffix (``.h5``/``.hdf5`` or legacy ``.tsv``)."""
    path = Path(path)
    if not path.exists():
        raise data_error(path, "feature file not found", "Check --features (a name under DATA/features/ or a path)")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return HDF5FeatureStore(path)
    if suffix == ".tsv":
        return TSVFeatureStore(path)
    raise data_error(path, f"unknown feature file type {suffix!r}", "Use an .h5/.hdf5 file or a legacy .tsv file")


# ---------------------------------------------------------------------------------------------------- HDF5


def _plain(value: Any) -> Any:
    """An HDF5 attribute value as a plain Python value, so attributes compare and print simply."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _open_h5(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode)
    except OSError as err:
        raise data_error(
            path,
            f"not a readable HDF5 file ({err})",
            "If a writer was killed while flushing, delete the file and extract again",
        ) from None


class HDF5FeatureStore(FeatureStore):
    """Features in HDF5: one dataset per key, shape [36, D] (float32 or float16)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = _open_h5(self.path, "r")
        self.attrs = {name: _plain(value) for name, value in self._file.attrs.items()}
        self._keys = list(self._file.keys())
        self._key_set = set(self._keys)
        if "dim" in self.attrs:
            self.dim = int(self.attrs["dim"])
        elif self._keys:
            self.dim = int(self._file[self._keys[0]].shape[-1])
        else:
            raise data_error(self.path, "holds no features and no 'dim' attribute", "Extract features into it first")

    def keys(self) -> list[str]:
        return list(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._key_set

    def _read(self, key: str) -> np.ndarray:
        dataset = self._file[key]
        if not isinstance(dataset, h5py.Dataset) or dataset.shape != (VIEWS, self.dim):
            shape = getattr(dataset, "shape", "a group")
            raise data_error(
                self.path,
                f"entry {key!r} has shape {shape}, expected ({VIEWS}, {self.dim})",
                "Re-extract this file; every key must hold the 36 views of one panorama",
            )
        return dataset[()]

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()


from features.h5writer import HDF5FeatureWriter  # noqa: E402  (re-exported: one import for readers and writers)
from features.tsv import TSVFeatureStore, write_tsv  # noqa: E402

__all__ = ["FeatureStore", "HDF5FeatureStore", "TSVFeatureStore", "HDF5FeatureWriter", "open_features",
           "write_tsv", "feature_key", "VIEWS", "FORMAT_VERSION"]
