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
"""

from __future__ import annotations

import binascii
import json
import os
import shutil
import struct
import tempfile
import zlib
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


class HDF5FeatureWriter:
    """Write features into an HDF5 file, one dataset per key; a killed run resumes where it stopped.

    HDF5 itself is not crash-safe (a process killed while the library flushes leaves a file whose
    metadata points past its end; measured here: about 1 kill in 8 when flushing after every key). So
    the writer appends each :meth:`write` to a journal beside the output (``OUT.h5.journal``: length-
    prefixed, CRC-checked records) and builds the HDF5 file only in :meth:`close`, into ``OUT.h5.tmp``
    renamed over ``OUT.h5``. Guarantees against a kill at any moment (``SIGKILL`` included):

    * ``OUT.h5`` is either absent or complete (the previous complete version while a resume runs);
    * every key whose ``write`` returned (with ``flush_every=1``) is in the journal; a torn last record
      is detected by its CRC and dropped when the next writer opens the journal;
    * a new writer with the same ``dim``/``dtype``/``attrs`` resumes: ``key in writer`` tells which
      keys are done (in ``OUT.h5`` or the journal); other settings raise :class:`DataError`.

    Power loss is not covered (the OS may not have written its buffers). Leaving the ``with`` block by an
    exception calls :meth:`suspend` (the journal stays, ``OUT.h5`` is not built from a partial run).
    ``journal=False`` writes straight into the HDF5 file, for callers that write to a temporary file
    and rename it themselves (as :mod:`features.convert` does).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        dim: int,
        attrs: dict[str, Any],
        dtype: np.dtype | type = np.float32,
        flush_every: int = 1,
        journal: bool = True,
    ):
        self.path = Path(path)
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise ValueError(f"dtype must be float32 or float16, got {self.dtype}")
        self.flush_every = max(1, int(flush_every))
        self.attrs = {name: _plain(value) for name, value in attrs.items()}
        self.attrs.update(format_version=FORMAT_VERSION, dim=self.dim, dtype=self.dtype.name, views=VIEWS)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._done: set[str] = set()
        if self.path.exists():
            with _open_h5(self.path, "r") as existing:
                self._check_attrs(self.path, {name: _plain(value) for name, value in existing.attrs.items()})
                self._done.update(existing.keys())
        self._unflushed = 0
        self._closed = False
        self._h5: h5py.File | None = None
        self._journal: Any = None
        if journal:
            self.journal_path = self.path.with_name(self.path.name + ".journal")
            self._entries: dict[str, tuple[int, int]] = {}  # key -> (payload offset, payload bytes) in the journal
            self._open_journal()
        else:
            self.journal_path = None
            self._h5 = h5py.File(self.path, "r+" if self.path.exists() else "w")
            for name, value in self.attrs.items():
                self._h5.attrs[name] = value

    def _check_attrs(self, where: Path, found: dict[str, Any]) -> None:
        for name, value in self.attrs.items():
            if found.get(name) != value:
                raise data_error(
                    where,
                    f"exists with attribute {name}={found.get(name)!r}, but this run writes {name}={value!r}",
                    "Resume with the same settings, or write to a new file (or delete this one)",
                )

    # Journal layout: JOURNAL_MAGIC, u32 header length, header JSON (the attrs), then records of
    # u32 key length, key, u32 payload length, payload (dtype bytes, C order), u32 CRC32 of key + payload.
    def _open_journal(self) -> None:
        path = self.journal_path
        if not path.exists():
            header = json.dumps(self.attrs, sort_keys=True).encode()
            tmp = path.with_name(path.name + ".new")  # so a kill never leaves a journal with a torn header
            tmp.write_bytes(JOURNAL_MAGIC + struct.pack("<I", len(header)) + header)
            os.replace(tmp, path)
        self._journal = journal = open(path, "r+b")
        try:
            if journal.read(len(JOURNAL_MAGIC)) != JOURNAL_MAGIC:
                raise data_error(path, "is not a feature-writer journal", "Delete it (its keys are lost) and run again")
            (size,) = struct.unpack("<I", journal.read(4).rjust(4, b"\0"))
            try:
                header = json.loads(journal.read(size))
            except ValueError:
                raise data_error(path, "has a corrupt header", "Delete it (its keys are lost) and run again") from None
            self._check_attrs(path, header)
        except DataError:
            journal.close()
            raise
        pos, expected = journal.tell(), VIEWS * self.dim * self.dtype.itemsize
        while True:  # stop at the first torn or corrupt record: the kill happened there
            head = journal.read(4)
            if len(head) < 4:
                break
            key_bytes = journal.read(struct.unpack("<I", head)[0])
            size_bytes = journal.read(4)
            if len(size_bytes) < 4:
                break
            payload = journal.read(struct.unpack("<I", size_bytes)[0])
            crc = journal.read(4)
            if len(crc) < 4 or len(payload) != expected or struct.unpack("<I", crc)[0] != zlib.crc32(payload, zlib.crc32(key_bytes)):
                break
            self._entries[key_bytes.decode()] = (pos + 8 + len(key_bytes), len(payload))
            pos = journal.tell()
        self._journal.truncate(pos)
        self._journal.seek(pos)
        self._done.update(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._done

    def __len__(self) -> int:
        return len(self._done)

    def write(self, scan: str, viewpoint: str, array: np.ndarray) -> None:
        """Store one panorama's features ``[36, D]``; writing an existing key replaces its values."""
        array = np.asarray(array)
        if array.shape != (VIEWS, self.dim):
            raise ValueError(f"features of {scan}_{viewpoint} have shape {array.shape}, expected ({VIEWS}, {self.dim})")
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        key = feature_key(scan, viewpoint)
        data = np.ascontiguousarray(array, dtype=self.dtype)
        if self._h5 is not None:
            if key in self._h5:
                self._h5[key][...] = data
            else:
                self._h5.create_dataset(key, data=data)
        else:
            key_bytes, payload = key.encode(), data.tobytes()
            offset = self._journal.tell() + 8 + len(key_bytes)
            crc = zlib.crc32(payload, zlib.crc32(key_bytes))
            self._journal.write(struct.pack("<I", len(key_bytes)) + key_bytes + struct.pack("<I", len(payload)))
            self._journal.write(payload)
            self._journal.write(struct.pack("<I", crc))
            self._entries[key] = (offset, len(payload))
        self._done.add(key)
        self._unflushed += 1
        if self._unflushed >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Hand everything written so far to the OS, so that killing this process loses none of it."""
        (self._h5 or self._journal).flush()
        self._unflushed = 0

    def suspend(self) -> None:
        """Stop without building the HDF5 file; the journal stays and a later writer resumes from it."""
        if not self._closed:
            self._closed = True
            (self._h5 or self._journal).close()

    def close(self) -> None:
        """Build ``OUT.h5`` (old contents + journal) atomically, then remove the journal."""
        if self._closed:
            return
        self._closed = True
        if self._h5 is not None:
            self._h5.close()
            return
        self._journal.flush()
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.unlink(missing_ok=True)  # left by a kill during an earlier close
        if self.path.exists():
            shutil.copyfile(self.path, tmp)
        with h5py.File(tmp, "r+" if tmp.exists() else "w") as out:
            for name, value in self.attrs.items():
                out.attrs[name] = value
            for key, (offset, size) in self._entries.items():
                self._journal.seek(offset)
                array = np.frombuffer(self._journal.read(size), dtype=self.dtype).reshape(VIEWS, self.dim)
                if key in out:
                    out[key][...] = array
                else:
                    out.create_dataset(key, data=array)
        self._journal.close()
        os.replace(tmp, self.path)
        self.journal_path.unlink()

    def __enter__(self) -> HDF5FeatureWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.suspend()


# ----------------------------------------------------------------------------------------------- legacy TSV


def _number(text: bytes) -> int | float | str:
    """A TSV image-setting column as int when it is one, else float, else the raw text."""
    value = text.decode("utf-8", "replace")
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class TSVFeatureStore(FeatureStore):
    """Legacy R2R feature TSV, read lazily: one scan for keys and offsets, base64 decoded on access."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = open(self.path, "rb")
        self._rows: dict[str, tuple[int, int, int]] = {}  # key -> (byte offset, byte length, line number)
        self.attrs = {"format": "tsv"}
        self.dim = 0
        self._scan()

    def _scan(self) -> None:
        """Index every row; check column count and the decoded size without decoding."""
        offset = 0
        for line_no, line in enumerate(self._file, start=1):
            start, offset = offset, offset + len(line)
            stripped = line.rstrip(b"\r\n")
            if not stripped.strip():
                continue
            fields = stripped.split(b"\t")
            if len(fields) != len(TSV_COLUMNS):
                raise data_error(
                    self.path,
                    f"line {line_no} has {len(fields)} tab-separated columns, expected {len(TSV_COLUMNS)} "
                    f"({', '.join(TSV_COLUMNS)})",
                    "Rewrite the file with features.store.write_tsv",
                )
            if line_no == 1 and fields[0] == b"scanId":
                continue  # a header row, which some converters add
            key = feature_key(fields[0].decode(), fields[1].decode())
            data = fields[5]
            dim = self._dim_of(data, line_no, key)
            if not self._rows:
                self.dim = dim
                self.attrs.update(image_w=_number(fields[2]), image_h=_number(fields[3]), vfov=_number(fields[4]))
            elif dim != self.dim:
                raise data_error(
                    self.path,
                    f"line {line_no} ({key}) holds [36, {dim}] features but earlier rows hold [36, {self.dim}]",
                    "Every row must come from the same encoder; regenerate the file",
                )
            self._rows[key] = (start + len(stripped) - len(data), len(data), line_no)
        if not self._rows:
            raise data_error(self.path, "holds no feature rows", "Check that it is the right file")

    def _dim_of(self, data: bytes, line_no: int, key: str) -> int:
        """D from the base64 text length: its decoded bytes must split into 36 float32 x D."""
        if len(data) % 4:
            raise self._corrupt(line_no, key, f"base64 length {len(data)} is not a multiple of 4")
        n_bytes = len(data) // 4 * 3 - len(data[-2:]) + len(data[-2:].rstrip(b"="))
        if n_bytes == 0 or n_bytes % (VIEWS * 4):
            raise data_error(
                self.path,
                f"line {line_no} ({key}): features decode to {n_bytes} bytes, not 36 views x D float32",
                "The features column must be base64 of float32 [36, D] in C order",
            )
        return n_bytes // (VIEWS * 4)

    def _corrupt(self, line_no: int, key: str, problem: str) -> DataError:
        return data_error(
            self.path,
            f"line {line_no} ({key}): corrupt base64 in the features column ({problem})",
            "Download or regenerate the file",
        )

    def keys(self) -> list[str]:
        return list(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def _read(self, key: str) -> np.ndarray:
        offset, length, line_no = self._rows[key]
        self._file.seek(offset)
        try:
            raw = binascii.a2b_base64(self._file.read(length), strict_mode=True)
        except binascii.Error as err:
            raise self._corrupt(line_no, key, str(err)) from None
        return np.frombuffer(raw, dtype="<f4").reshape(VIEWS, self.dim)

    def _read_order(self, keys: list[str]) -> Iterable[int]:
        return sorted(range(len(keys)), key=lambda i: self._rows[keys[i]][0])

    def close(self) -> None:
        self._file.close()


def write_tsv(
    path: str | os.PathLike,
    rows: Iterable[tuple[str, str, np.ndarray]],
    image_w: int = 640,
    image_h: int = 480,
    vfov: int | float = 60,
) -> int:
    """Write ``(scan, viewpoint, features [36, D])`` rows in the legacy TSV layout; returns the row count.

    Written to a temporary file and renamed, so an interrupted write never leaves a truncated TSV.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for scan, viewpoint, array in rows:
                array = np.ascontiguousarray(array, dtype="<f4")
                if array.ndim != 2 or array.shape[0] != VIEWS:
                    raise ValueError(f"features of {scan}_{viewpoint} have shape {array.shape}, expected (36, D)")
                head = f"{scan}\t{viewpoint}\t{image_w}\t{image_h}\t{vfov}\t".encode()
                out.write(head + binascii.b2a_base64(array.tobytes(), newline=False) + b"\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
