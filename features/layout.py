"""What every feature file holds, whatever its format: the key of a panorama and the read interface.

A feature file maps a key ``f"{scan}_{viewpoint}"`` to a float array ``[36, D]``: one D-dim vector per
discretized view, in MatterSim's view order (``viewIndex = heading_index + 12 * elevation_index``,
:mod:`envs.kernel.grid`). Formats: :mod:`features.hdf5` (the modern one, and the kill-safe writer) and
:mod:`features.tsv` (the legacy R2R / EnvDrop / CLIP-ViL TSV); :func:`features.store.open_features` picks the
reader by suffix. Readers are lazy; :meth:`FeatureStore.table` makes the dense copy an environment gathers
from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from envs.datadir import DataError, data_error
from envs.kernel.grid import VIEW_COUNT
from envs.validate import first_nonfinite

# Largest magnitude a feature value may have. Image features (CLIP's unnormalised embeddings, ResNet's pooled
# activations) stay far below it; the envs' observation spaces are bounded by it, so a file beyond it is broken.
FEATURE_LIMIT = 1e4


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

    def _checked(self, key: str, values: np.ndarray) -> np.ndarray:
        """``values`` of ``key`` if every one is finite and within :data:`FEATURE_LIMIT`, else a DataError naming
        the view and channel (one vectorised pass over the row when it is fine)."""
        peak = np.max(np.abs(values)) if values.size else 0.0
        if peak <= FEATURE_LIMIT:  # False for NaN too
            return values
        bad = first_nonfinite(values)
        if bad is None:
            bad = tuple(int(i) for i in np.argwhere(np.abs(values) > FEATURE_LIMIT)[0])
        raise data_error(self.path, f"entry {key!r} holds {values[bad]} at view {bad[0]}, channel {bad[1]} (features "
                         f"must be finite and within +-{FEATURE_LIMIT:g})",
                         "Regenerate the file (python -m features.extract or features.convert)")

    def __getitem__(self, key: str) -> np.ndarray:
        """Features of one panorama as float32 ``[36, D]``, checked (finite, within :data:`FEATURE_LIMIT`); a
        missing key raises :class:`DataError`."""
        if key not in self:
            raise self._missing(key)
        return self._checked(key, np.asarray(self._read(key), dtype=np.float32))

    def get(self, scan: str, viewpoint: str) -> np.ndarray:
        """Features of viewpoint ``viewpoint`` in scan ``scan`` as float32 ``[36, D]``."""
        return self[feature_key(scan, viewpoint)]

    def table(self, keys: list[str], dtype: np.dtype | type = np.float32, out: np.ndarray | None = None) -> np.ndarray:
        """A dense copy ``[K, 36, D]`` of ``keys`` in that order, so an env can gather rows by index; into
        ``out`` (its dtype wins) when given, so a caller's preallocated table needs no second copy.

        Every key is checked before any is read, so a missing one fails at once rather than after
        minutes of decoding; every row's values are checked as it is read.
        """
        for key in keys:
            if key not in self:
                raise self._missing(key)
        if out is None:
            out = np.empty((len(keys), VIEW_COUNT, self.dim), dtype=dtype)  # (K, 36, D)
        assert out.shape == (len(keys), VIEW_COUNT, self.dim), f"out {out.shape} for {len(keys)} keys of {self.dim}-d"
        for i in self._read_order(keys):
            out[i] = self._checked(keys[i], self._read(keys[i]))
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
