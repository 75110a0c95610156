"""Checks for the files the toolkit reads: every problem is one :class:`~envs.datadir.DataError` on one line.

A message reads ``{file}: {entry} field '{name}' {what is wrong}. {what to do}``, for example::

    R2R_val_seen.json: entry 3 (path_id 7) field 'heading' is nan, expected a finite number. Check that ...

Loaders check what they read once, at load time, so nothing on a hot path (an env step, a feature gather) pays
for it; checks over many numbers are vectorised and only a failure walks the entries to name the first bad one.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.datadir import data_error

NUMBER = (int, float)


def kind_names(kinds: type | tuple[type, ...]) -> str:
    """``int or float`` for ``(int, float)``."""
    return kinds.__name__ if isinstance(kinds, type) else " or ".join(k.__name__ for k in kinds)


def shown(value: Any, width: int = 60) -> str:
    """A value as a message shows it: its repr, cut to ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_field(path: str | os.PathLike, where: str, record: Any, name: str, kinds: type | tuple[type, ...],
                optional: bool = False, fix: str = "Check that this is an unmodified file") -> Any:
    """Field ``name`` of the record at ``where`` (e.g. "entry 3"), type-checked; one clear DataError otherwise.

    ``bool`` never passes for a number (JSON ``true`` is not 1 here).
    """
    if not isinstance(record, dict):
        raise data_error(path, f"{where} is a {type(record).__name__}, not an object", "Each entry must be a JSON object")
    if name not in record:
        if optional:
            return None
        raise data_error(path, f"{where} has no field {name!r}", fix)
    value = record[name]
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise data_error(path, f"{where} field {name!r} is {shown(value)}, expected {kind_names(kinds)}", fix)
    return value


def check_number(path: str | os.PathLike, where: str, record: Any, name: str, optional: bool = False,
                 minimum: float | None = None, fix: str = "Check that this is an unmodified file") -> float | None:
    """A finite number field (at least ``minimum`` when given); NaN and infinities are named as such."""
    value = check_field(path, where, record, name, NUMBER, optional, fix)
    if value is None:
        return None
    if not math.isfinite(value):
        raise data_error(path, f"{where} field {name!r} is {value}, expected a finite number", fix)
    if minimum is not None and value < minimum:
        raise data_error(path, f"{where} field {name!r} is {value}, expected at least {minimum}", fix)
    return float(value)


def check_text(path: str | os.PathLike, where: str, record: Any, name: str,
               fix: str = "Check that this is an unmodified file") -> str:
    """A string field that is not empty (nor only white space)."""
    value = check_field(path, where, record, name, str, fix=fix)
    if not value.strip():
        raise data_error(path, f"{where} field {name!r} is empty", fix)
    return value


def check_texts(path: str | os.PathLike, where: str, record: Any, name: str, what: str,
                fix: str = "Check that this is an unmodified file") -> list[str]:
    """A non-empty list of non-empty strings (``what`` names one item in the message, e.g. "viewpoint ids")."""
    values = check_field(path, where, record, name, list, fix=fix)
    if not values:
        raise data_error(path, f"{where} field {name!r} is an empty list, expected {what}", fix)
    for k, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            problem = "is empty" if isinstance(value, str) else f"is {shown(value)}, not a string"
            raise data_error(path, f"{where} field {name!r}[{k}] {problem}; expected {what}", fix)
    return values


def first_duplicate(values: Sequence[Hashable]) -> tuple[int, int] | None:
    """``(earlier, later)`` positions of the first value that repeats, or None when all differ."""
    seen: dict[Hashable, int] = {}
    for k, value in enumerate(values):
        if value in seen:
            return seen[value], k
        seen[value] = k
    return None


def first_nonfinite(array: np.ndarray) -> tuple[int, ...] | None:
    """Index of the first NaN or infinity in ``array``, or None (one vectorised pass when all are finite)."""
    finite = np.isfinite(array)
    if finite.all():
        return None
    return tuple(int(i) for i in np.argwhere(~finite)[0])


# ---------------------------------------------------------------------------------------------- torch files
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def torch_load(path: str | os.PathLike, what: str, fix: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` whose failures are one :class:`DataError` saying what the file is.

    Torch's own messages suggest turning the weights-only check off (which runs whatever code the file holds);
    these never do: a file that needs it is not one of ours, and ``fix`` says what to pass instead.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.exists():
        raise data_error(path, f"{what} not found", fix)
    if not path.is_file():
        raise data_error(path, f"is a {'folder' if path.is_dir() else 'special file'}, not a {what}", fix)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before failing on them
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        if found:
            problem = (f"holds a Python object ({found.group(1)}) besides tensors and plain values, so it is not a "
                       f"{what}")
        elif _first_byte(path) == b"\x80":  # the PROTO opcode that starts a pickle (protocol 2 and later)
            problem = f"is a pickle of Python objects, not a {what} written by torch.save"
        else:
            problem = f"is not a {what} (not a file written by torch.save)"
    except EOFError:
        problem = f"is empty or cut short, not a complete {what}"
    except RuntimeError as err:
        cut = "zip archive" in str(err) or "PytorchStreamReader" in str(err)
        problem = f"is cut short or corrupted (not a complete {what})" if cut else f"cannot be read as a {what}"
    except (KeyError, ValueError, TypeError, AttributeError, IndexError):
        problem = f"is not a {what} (not a file written by torch.save)"
    raise data_error(path, problem, fix)


def _first_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(1)


__all__ = ["NUMBER", "check_field", "check_number", "check_text", "check_texts", "first_duplicate",
           "first_nonfinite", "kind_names", "shown", "torch_load"]
