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
    p.add_argument("--clip-encoder", default=None,
                   help="also extract CLIP features of the skyboxes with this encoder (RN50, RN101, RN50x4, "
                        "ViT-B-32, ViT-B-16) through features.extract, into features/clip-{name}.h5")
    p.add_argument("--clip-weights", default=None,
                   help="open_clip pretrained tag or local weights file for --clip-encoder (default: random init)")
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
    if args.clip_encoder:
        return extract_clip(args.out, args.clip_encoder, args.clip_weights)
    return 0


def extract_clip(world: Path, encoder: str, weights: str | None) -> int:
    """The world's skyboxes through the same extraction path as Matterport's (render 36 views, encode)."""
    if not (world / "skyboxes").is_dir():
        print("error: --clip-encoder needs skyboxes (drop --no-skyboxes)", file=sys.stderr)
        return 2
    from features.extract import main as extract_main

    out = world / "features" / f"clip-{encoder.lower()}.h5"
    args = ["--encoder", encoder, "--data-dir", str(world), "--out", str(out)]
    return extract_main(args + (["--weights", weights] if weights else []))


if __name__ == "__main__":
    sys.exit(main())
