"""``python -m envs.world --out DIR``: build a synthetic world data directory (see ``envs.world``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from envs.cli import field_docs
from envs.datadir import DataError
from envs.world.writer import WorldConfig, build_world


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m envs.world", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder to create (must not exist unless --force)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    docs = field_docs(WorldConfig)
    for f in fields(WorldConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "skyboxes":
            p.add_argument("--no-skyboxes", dest="skyboxes", action="store_false", help="do not render skyboxes")
            continue
        p.add_argument(flag, type=type(f.default), default=f.default, help=docs.get(f.name, ""))
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = WorldConfig(**{f.name: getattr(args, f.name) for f in fields(WorldConfig)})
    try:
        summary = build_world(args.out, config, force=args.force)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
