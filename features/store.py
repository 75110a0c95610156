"""Open a precomputed feature file, whatever its format: ``open_features(path)``.

Two layouts are read, chosen by the file's suffix:

* HDF5 (``.h5``/``.hdf5``, the modern one, :mod:`features.hdf5`): one dataset per key, shape ``[36, D]``,
  float32 or float16; file attributes name the encoder, its weights, the image settings and
  ``format_version``.
* Legacy TSV (``.tsv``, as R2R / EnvDrop / CLIP-ViL released them, :mod:`features.tsv`): tab-separated rows
  ``scanId, viewpointId, image_w, image_h, vfov, features`` without a header, where ``features`` is the
  base64 of float32 ``[36, D]`` in C order. Files reach several GB, so the reader scans once for byte
  offsets and decodes a row only when it is asked for.

Both readers are lazy (:class:`features.layout.FeatureStore`). Writing: :class:`features.hdf5.HDF5FeatureWriter`
(kill-safe HDF5) and :func:`features.tsv.write_tsv`.
"""

from __future__ import annotations

import os
from pathlib import Path

from envs.datadir import data_error
from features.hdf5 import HDF5FeatureStore
from features.layout import FeatureStore
from features.tsv import TSVFeatureStore


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
