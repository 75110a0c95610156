"""Where data lives: the layout of a data directory (real or built-in) and the errors for missing parts.

A data directory looks like::

    DATA/
      connectivity/{scan}_connectivity.json, scans.txt
      R2R/R2R_{train,val_seen,val_unseen,test}.json
      RxR/rxr_{split}_guide.jsonl.gz
      features/{name}.h5 (or legacy .tsv)
      skyboxes/{scan}/matterport_skybox_images/...

Any part may be missing; a command that needs it raises :class:`DataError` naming what and where.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """Bad or missing input data. The message names the file, the field and the fix."""


def data_error(path: str | os.PathLike, problem: str, fix: str = "") -> DataError:
    """Build a :class:`DataError` whose message reads ``{path}: {problem}. {fix}``."""
    message = f"{path}: {problem}"
    if fix:
        message += f". {fix}"
    return DataError(message)


def read_json(path: str | os.PathLike, what: str, fix: str):
    """Parse a JSON file; a missing file or bad JSON is one :class:`DataError` naming the file and ``fix``."""
    path = Path(path)
    if not path.exists():
        raise data_error(path, f"{what} not found", fix)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise data_error(path, f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", fix) from None
    except UnicodeDecodeError as exc:
        raise data_error(path, f"not UTF-8 text ({exc.reason})", fix) from None


def shared_data_dir() -> Path:
    """The real public data used by tests: ``$CLIPVIL_SHARED_DATA``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("CLIPVIL_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def cache_dir() -> Path:
    """The toolkit's cache folder (built-in world, downloads): ``$CLIPVIL_CACHE`` or ``~/.cache/clipvil``."""
    env = os.environ.get("CLIPVIL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "clipvil"


@dataclass(frozen=True)
class DataDir:
    """Paths inside one data directory. Accessors return where a part is expected, whether or not it exists."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def connectivity(self) -> Path:
        return self.root / "connectivity"

    @property
    def skyboxes(self) -> Path:
        return self.root / "skyboxes"

    def r2r_split(self, split: str) -> Path:
        return self.root / "R2R" / f"R2R_{split}.json"

    def rxr_split(self, split: str) -> Path:
        """RxR guide file; ``.jsonl.gz`` preferred, plain ``.jsonl`` accepted."""
        name = "rxr_test_standard_public_guide" if split == "test" else f"rxr_{split}_guide"
        for suffix in (".jsonl.gz", ".jsonl"):
            path = self.root / "RxR" / f"{name}{suffix}"
            if path.exists():
                return path
        return self.root / "RxR" / f"{name}.jsonl.gz"

    def features(self, name: str) -> Path:
        """A feature file by name (``features/{name}.h5`` or ``.tsv``) or by path."""
        as_path = Path(name)
        if as_path.suffix in (".h5", ".hdf5", ".tsv") and (as_path.exists() or as_path.is_absolute()):
            return as_path
        for suffix in (".h5", ".hdf5", ".tsv"):
            path = self.root / "features" / f"{name}{suffix}"
            if path.exists():
                return path
        return self.root / "features" / f"{name}.h5"

    def require(self, path: Path, what: str) -> Path:
        """Return ``path`` if it exists, else raise a :class:`DataError` saying what is missing and where."""
        if not path.exists():
            raise data_error(path, f"{what} not found", f"Expected it inside the data directory {self.root}")
        return path
