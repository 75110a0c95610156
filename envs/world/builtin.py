"""The built-in world as the default data directory: built once into the cache folder, announced on screen.

Every command resolves its ``--data-dir`` here once: a given folder is checked and returned; without one,
the built-in world (seed 0, default size) is built on first use into ``$CLIPVIL_CACHE`` (default
``~/.cache/clipvil``) and reused after.
"""

from __future__ import annotations

import sys
from pathlib import Path

from envs.datadir import cache_dir, data_error
from envs.world.writer import WORLD_VERSION, WorldConfig, build_world


def default_world_dir() -> Path:
    """The built-in world's folder, built first if it is not in the cache yet."""
    out = cache_dir() / f"world-v{WORLD_VERSION}-seed0"
    if (out / "world.json").exists():
        return out
    print(f"Building the built-in synthetic world into {out} (once; a few seconds)...", flush=True)
    try:
        summary = build_world(out, WorldConfig())
        print(summary.describe(), flush=True)
    except Exception:
        if not (out / "world.json").exists():  # not a lost race: a real failure
            raise
    return out


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """The data directory a command works on: ``data_dir`` if given (it must exist), else the built-in world
    (announced on stderr)."""
    if data_dir is not None:
        path = Path(data_dir)
        if not path.is_dir():
            raise data_error(path, "data directory not found",
                             "Pass --data-dir a folder holding connectivity/ and R2R/ (or RxR/)")
        return path
    path = default_world_dir()
    if path not in _announced:  # once per process: a run opens several envs
        _announced.add(path)
        print(f"Using the built-in world at {path}", file=sys.stderr)
    return path


_announced: set[Path] = set()
