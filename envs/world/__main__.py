"""``python -m envs.world --out DIR``: build a synthetic world data directory (see ``envs.world``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from envs.cli import add_config_arguments, add_debug_option, command, config_from_args
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
    add_debug_option(p)
    return p


@command
def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    build, config = config_from_args(BuildCommand, args), config_from_args(WorldConfig, args)
    if build.clip_encoder and not config.skyboxes:
        raise DataError("--clip-encoder needs skyboxes (drop --no-skyboxes)")
    summary = build_world(build.out, config, force=build.force, vl=config_from_args(VLConfig, args))
    print(summary.describe())
    if build.clip_encoder:
        return extract_clip(build.out, build.clip_encoder, build.clip_weights)
    return 0


def extract_clip(world: Path, encoder: str, weights: str | None) -> int:
    """The world's skyboxes through the same extraction command as Matterport's (render 36 views, encode)."""
    from features.extract import main as extract_main

    out = world / "features" / f"clip-{encoder.lower()}.h5"
    args = ["--encoder", encoder, "--data-dir", str(world), "--out", str(out)]
    return extract_main(args + (["--weights", weights] if weights else []))


if __name__ == "__main__":
    sys.exit(main())
