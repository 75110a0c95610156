"""The built-in world as the default data directory: built once into the cache folder, announced on screen.

Every command resolves its ``--data-dir`` here once: a given folder is checked and returned; without one,
the built-in world (seed 0, default size) is built on first use into ``$CLIPVIL_CACHE`` (default
``~/.cache/clipvil``) and reused after.
"""

from __future__ import annotations

import sys
from pathlib import Path

from envs.datadir import cache_dir, data_error
from envs.world.vl import VLConfig, build_vl, read_manifest
from envs.world.writer import WORLD_VERSION, WorldConfig, worker_count, build_world, house_roles


def default_world_dir() -> Path:
    """The built-in world's folder, built first if it is not in the cache yet (a world cached before the V&L
    data existed gets its ``vl/`` folder added)."""
    out = cache_dir() / f"world-v{WORLD_VERSION}-seed0"
    if (out / "world.json").exists():
        if read_manifest(out) is None:
            config = WorldConfig()
            print(f"Adding the V&L data to the built-in world in {out} (once)...", flush=True)
            build_vl(out, house_roles(config), config.seed, config.second_floor_prob, config.image_size,
                     VLConfig(), worker_count(config))
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
