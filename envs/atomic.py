"""Atomic file writes: the one way the toolkit writes outputs, so a kill never leaves half a file.

Everything is written to a temporary file beside the target (same folder, so the rename stays on one file
system), flushed to the disk, and renamed over the target; on any error the temporary file is removed and the
target keeps its old contents. Checkpoints, results files, feature files and caches all go through here.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path
from typing import IO, Any

import numpy as np


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to create a file at (by any library); renamed over ``path`` on success.

    The temporary path does not exist when it is handed out.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_leftovers(path: str | os.PathLike) -> None:
    """Delete temporary files that a killed :func:`atomic_path` left beside ``path`` (or, when ``path`` is a
    folder, in it). Only for outputs that one process writes at a time (another writer's temporary file would go
    too)."""
    path = Path(path)
    folder, pattern = (path, ".*.tmp") if path.is_dir() else (path.parent, f".{glob_escape(path.name)}.*.tmp")
    for leftover in folder.glob(pattern):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """``open(path, mode)`` on a temporary file, flushed to disk and renamed over ``path`` when the block ends."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> None:
    """Write ``obj`` as JSON (UTF-8) atomically."""
    write_bytes(path, json.dumps(obj, indent=indent).encode())


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping]) -> None:
    """Write one JSON object per line atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``numpy.savez`` of ``arrays`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
