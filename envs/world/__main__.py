"""``python -m envs.world --out DIR``: build a synthetic world data directory (see ``envs.world``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from envs.cli import add_config_arguments, config_from_args
from envs.datadir import DataError
from envs.world.vl import VLConfig
from envs.world.writer import WorldConfig, build_world


@dataclass
class BuildCommand:
    """What ``python -m envs.world`` does besides the world's own settings (:class:`WorldConfig`)."""

    out: Path
    """folder to create (must not exist unless --force)"""
    force: bool = False
    """replace --out if it exists"""
    clip_encoder: str | None = None
    """also extract CLIP features of the skyboxes with this encoder (RN50, RN101, RN50x4, ViT-B-32, ViT-B-16)
    through features.extract, into features/clip-{name}.h5"""
    clip_weights: str | None = None
    """open_clip pretrained tag or local weights file for --clip-encoder (default: random init)"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m envs.world", description=__doc__)
    add_config_arguments(p, BuildCommand)
    add_config_arguments(p, WorldConfig)
    add_config_arguments(p, VLConfig)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command, config = config_from_args(BuildCommand, args), config_from_args(WorldConfig, args)
    try:
        summary = build_world(command.out, config, force=command.force, vl=config_from_args(VLConfig, args))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.describe())
    if command.clip_encoder:
        return extract_clip(command.out, command.clip_encoder, command.clip_weights)
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
