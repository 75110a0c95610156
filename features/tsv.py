"""The legacy feature TSV of R2R / EnvDrop / CLIP-ViL: a lazy reader and an atomic writer."""

from __future__ import annotations

import binascii
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from envs.atomic import atomic_open
from envs.datadir import DataError, data_error
from envs.kernel.grid import R2R_CAMERA, R2R_VFOV_DEGREES, VIEW_COUNT
from features.layout import FeatureStore, feature_key

TSV_COLUMNS = ("scanId", "viewpointId", "image_w", "image_h", "vfov", "features")


SETTINGS = TSV_COLUMNS[2:5]  # image_w, image_h, vfov: the same on every row of one file
REGENERATE = "Rewrite the file with features.tsv.write_tsv"


def _number(text: bytes) -> int | float | None:
    """A TSV image-setting column as int when it is one, else a finite positive float, else None."""
    value = text.decode("utf-8", "replace").strip()
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        return number if 0 < number < float("inf") else None
    return None


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
                    REGENERATE,
                )
            if line_no == 1 and fields[0] == b"scanId":
                continue  # a header row, which some converters add
            scan, viewpoint = (self._id(fields[k], line_no, TSV_COLUMNS[k]) for k in (0, 1))
            key = feature_key(scan, viewpoint)
            if key in self._rows:
                raise data_error(self.path, f"line {line_no} ({key}) repeats line {self._rows[key][2]}",
                                 "Each panorama must appear once; " + REGENERATE.lower())
            data = fields[5]
            dim = self._dim_of(data, line_no, key)
            if not self._rows:
                self.dim = dim
                settings = fields[2:5]
                for name, text in zip(SETTINGS, settings):
                    if _number(text) is None:
                        raise data_error(self.path, f"line {line_no} ({key}) column {name!r} is "
                                         f"{text.decode('utf-8', 'replace')!r}, expected a positive number", REGENERATE)
                self.attrs.update({name: _number(text) for name, text in zip(SETTINGS, settings)})
            elif fields[2:5] != settings:
                raise data_error(self.path, f"line {line_no} ({key}) has image settings "
                                 f"{b' '.join(fields[2:5]).decode('utf-8', 'replace')} but the first row has "
                                 f"{b' '.join(settings).decode('utf-8', 'replace')} ({', '.join(SETTINGS)})",
                                 "Every row must come from the same renderer and encoder; regenerate the file")
            elif dim != self.dim:
                raise data_error(
                    self.path,
                    f"line {line_no} ({key}) holds [36, {dim}] features but earlier rows hold [36, {self.dim}]",
                    "Every row must come from the same encoder; regenerate the file",
                )
            self._rows[key] = (start + len(stripped) - len(data), len(data), line_no)
        if not self._rows:
            raise data_error(self.path, "holds no feature rows", "Check that it is the right file")

    def _id(self, text: bytes, line_no: int, column: str) -> str:
        """A scan or viewpoint id column: non-empty UTF-8 without white space."""
        try:
            value = text.decode("utf-8")
        except UnicodeDecodeError:
            value = ""
        if not value or any(c.isspace() for c in value):
            raise data_error(self.path, f"line {line_no} column {column!r} is {text[:40]!r}, expected an id",
                             REGENERATE)
        return value

    def _dim_of(self, data: bytes, line_no: int, key: str) -> int:
        """D from the base64 text length: its decoded bytes must split into 36 float32 x D."""
        if len(data) % 4:
            raise self._corrupt(line_no, key, f"base64 length {len(data)} is not a multiple of 4")
        n_bytes = len(data) // 4 * 3 - len(data[-2:]) + len(data[-2:].rstrip(b"="))
        if n_bytes == 0 or n_bytes % (VIEW_COUNT * 4):
            raise data_error(
                self.path,
                f"line {line_no} ({key}): features decode to {n_bytes} bytes, not 36 views x D float32",
                "The features column must be base64 of float32 [36, D] in C order",
            )
        return n_bytes // (VIEW_COUNT * 4)

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
        return np.frombuffer(raw, dtype="<f4").reshape(VIEW_COUNT, self.dim)

    def _read_order(self, keys: list[str]) -> Iterable[int]:
        return sorted(range(len(keys)), key=lambda i: self._rows[keys[i]][0])

    def close(self) -> None:
        self._file.close()


def write_tsv(
    path: str | os.PathLike,
    rows: Iterable[tuple[str, str, np.ndarray]],
    image_w: int = R2R_CAMERA.width,
    image_h: int = R2R_CAMERA.height,
    vfov: int | float = R2R_VFOV_DEGREES,
) -> int:
    """Write ``(scan, viewpoint, features [36, D])`` rows in the legacy TSV layout; returns the row count.

    Written atomically (:mod:`envs.atomic`), so an interrupted write never leaves a truncated TSV.
    """
    count = 0
    with atomic_open(path, "wb") as out:
        for scan, viewpoint, array in rows:
            array = np.ascontiguousarray(array, dtype="<f4")
            if array.ndim != 2 or array.shape[0] != VIEW_COUNT:
                raise ValueError(f"features of {scan}_{viewpoint} have shape {array.shape}, expected (36, D)")
            head = f"{scan}\t{viewpoint}\t{image_w}\t{image_h}\t{vfov}\t".encode()
            out.write(head + binascii.b2a_base64(array.tobytes(), newline=False) + b"\n")
            count += 1
    return count
