"""Features in HDF5 (the modern layout): a lazy reader and a kill-safe writer.

One dataset per key ``f"{scan}_{viewpoint}"``, shape ``[36, D]``, float32 or float16; the file's attributes
name the encoder, its weights, the image settings and ``format_version``.

HDF5 flushes are not safe against a kill (a test saw about 1 in 8 kills mid-flush corrupt the file), so each
``write`` appends a record to ``OUT.h5.journal`` and ``close()`` builds the ``.h5`` in a temporary file and
renames it. ``OUT.h5`` is therefore absent or complete; a resumed writer replays the journal (a torn last
record is dropped).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from envs.atomic import atomic_path, remove_leftovers, write_bytes
from envs.datadir import DataError, data_error
from envs.kernel.grid import VIEW_COUNT
from envs.validate import first_nonfinite
from features.layout import FeatureStore, feature_key

FORMAT_VERSION = 1  # of the HDF5 layout written by HDF5FeatureWriter
JOURNAL_MAGIC = b"CLIPVIL-FEATURE-JOURNAL-1\n"


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
            dim = self.attrs["dim"]
            if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
                raise data_error(self.path, f"attribute 'dim' is {dim!r}, expected a positive integer",
                                 "Re-extract this file")
            self.dim = dim
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
        if not isinstance(dataset, h5py.Dataset) or dataset.shape != (VIEW_COUNT, self.dim) \
                or dataset.dtype.kind != "f":
            shape = f"shape {dataset.shape} of {dataset.dtype}" if isinstance(dataset, h5py.Dataset) else "a group"
            raise data_error(
                self.path,
                f"entry {key!r} holds {shape}, expected float ({VIEW_COUNT}, {self.dim})",
                "Re-extract this file; every key must hold the 36 views of one panorama",
            )
        try:
            return dataset[()]
        except OSError as err:  # a chunk the file's index points past: the file was cut short
            raise data_error(self.path, f"entry {key!r} cannot be read ({err})",
                             "Re-extract this file (or convert it again)") from None

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()


class HDF5FeatureWriter:
    """Write features into an HDF5 file, one dataset per key; a killed run resumes where it stopped.

    HDF5 itself is not crash-safe (a process killed while the library flushes leaves a file whose
    metadata points past its end; measured here: about 1 kill in 8 when flushing after every key). So
    the writer appends each :meth:`write` to a journal beside the output (``OUT.h5.journal``: length-
    prefixed, CRC-checked records) and builds the HDF5 file only in :meth:`close`, into a temporary file
    renamed over ``OUT.h5`` (:func:`envs.atomic.atomic_path`). Guarantees against a kill at any moment (``SIGKILL`` included):

    * ``OUT.h5`` is either absent or complete (the previous complete version while a resume runs);
    * every key whose ``write`` returned (with ``flush_every=1``) is in the journal; a torn last record
      is detected by its CRC and dropped when the next writer opens the journal;
    * a new writer with the same ``dim``/``dtype``/``attrs`` resumes: ``key in writer`` tells which
      keys are done (in ``OUT.h5`` or the journal); other settings raise :class:`DataError`.

    Power loss is not covered (the OS may not have written its buffers). Leaving the ``with`` block by an
    exception calls :meth:`suspend` (the journal stays, ``OUT.h5`` is not built from a partial run).
    ``journal=False`` writes straight into the HDF5 file, for callers that write to a temporary file
    and rename it themselves (as :mod:`features.convert` does). ``rows`` is the first dimension of every
    entry: 36 views of a panorama (the default), or the ``h * w`` cells of an image's grid features
    (:mod:`features.grid`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        dim: int,
        attrs: dict[str, Any],
        dtype: np.dtype | type = np.float32,
        flush_every: int = 1,
        journal: bool = True,
        rows: int = VIEW_COUNT,
    ):
        self.path = Path(path)
        self.dim = int(dim)
        self.rows = int(rows)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
            raise ValueError(f"dtype must be float32 or float16, got {self.dtype}")
        self.flush_every = max(1, int(flush_every))
        self.attrs = {name: _plain(value) for name, value in attrs.items()}
        self.attrs.update(format_version=FORMAT_VERSION, dim=self.dim, dtype=self.dtype.name)
        self.attrs.update({"views": VIEW_COUNT} if self.rows == VIEW_COUNT else {"rows": self.rows})
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
            # atomically, so a kill never leaves a journal with a torn header
            write_bytes(path, JOURNAL_MAGIC + struct.pack("<I", len(header)) + header)
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
        pos, expected = journal.tell(), self.rows * self.dim * self.dtype.itemsize
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
        self.write_key(feature_key(scan, viewpoint), array)

    def write_key(self, key: str, array: np.ndarray) -> None:
        """Store ``[rows, D]`` features under ``key`` (a panorama's ``scan_viewpoint``, an image id)."""
        array = np.asarray(array)
        if array.shape != (self.rows, self.dim):
            raise ValueError(f"features of {key} have shape {array.shape}, expected ({self.rows}, {self.dim})")
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        data = np.ascontiguousarray(array, dtype=self.dtype)
        bad = first_nonfinite(data)
        if bad is not None:  # e.g. an encoder that overflowed, or float16 storage of values beyond 65504
            raise data_error(self.path, f"features of {key} hold {array[bad]} at view {bad[0]}, channel {bad[1]} "
                             f"(as {self.dtype}: {data[bad]})", "Features must be finite: check the encoder's "
                             "precision, or store float32")
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
        remove_leftovers(self.path)  # of a kill during an earlier close
        with atomic_path(self.path) as tmp:
            if self.path.exists():
                shutil.copyfile(self.path, tmp)
            with h5py.File(tmp, "r+" if tmp.exists() else "w") as out:
                for name, value in self.attrs.items():
                    out.attrs[name] = value
                for key, (offset, size) in self._entries.items():
                    self._journal.seek(offset)
                    array = np.frombuffer(self._journal.read(size), dtype=self.dtype).reshape(self.rows, self.dim)
                    if key in out:
                        out[key][...] = array
                    else:
                        out.create_dataset(key, data=array)
        self._journal.close()
        self.journal_path.unlink()

    def __enter__(self) -> HDF5FeatureWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.suspend()
