"""Convert a legacy R2R feature TSV into the HDF5 layout: ``python -m features.convert IN.tsv OUT.h5``.

The released EnvDrop / CLIP-ViL feature files are multi-GB TSVs of base64 text; HDF5 reads a key without
decoding the rest and halves in size again with ``--dtype float16``. The output is written to a
temporary file beside OUT and renamed at the end, so OUT is either absent or complete.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from envs.atomic import atomic_path
from envs.cli import command, parse_config
from features.hdf5 import HDF5FeatureWriter
from features.tsv import TSVFeatureStore


@dataclass
class ConvertConfig:
    """Options of ``python -m features.convert``."""

    src: Path
    """the legacy feature TSV to read"""
    dst: Path
    """the HDF5 file to write (replaced atomically if it exists)"""
    dtype: Literal["float32", "float16"] = "float32"
    """storage dtype of the HDF5 datasets: float32 (exact) or float16 (half the size)"""
    encoder: str = "unknown"
    """encoder name recorded in the file's attributes (e.g. RN50x4, resnet152)"""
    weights: str = "unknown"
    """weights tag or file recorded in the file's attributes"""
    quiet: bool = False
    """hide the progress bar"""


def convert(config: ConvertConfig) -> int:
    """Copy every row of ``config.src`` into ``config.dst``; returns the number of keys written."""
    with TSVFeatureStore(config.src) as store, atomic_path(config.dst) as tmp:
        attrs = dict(store.attrs, encoder=config.encoder, weights=config.weights, source=Path(config.src).name)
        attrs.pop("format", None)
        keys = store.keys()
        # The temp file is renamed only when complete, so the writer's journal would buy nothing here.
        with HDF5FeatureWriter(tmp, store.dim, attrs, dtype=np.dtype(config.dtype), flush_every=len(keys),
                               journal=False) as out:
            for key in tqdm(keys, desc=f"{Path(config.src).name} -> {Path(config.dst).name}", unit="pano",
                            disable=config.quiet):
                scan, viewpoint = key.split("_", 1)
                out.write(scan, viewpoint, store[key])
    return len(keys)


@command
def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    config = parse_config(ConvertConfig, argv, prog="python -m features.convert",
                          description=__doc__.splitlines()[0], positional=("src", "dst"))
    count = convert(config)
    print(f"wrote {count} panoramas to {config.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
