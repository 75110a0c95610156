"""Convert a legacy R2R feature TSV into the HDF5 layout: ``python -m features.convert IN.tsv OUT.h5``.

The released EnvDrop / CLIP-ViL feature files are multi-GB TSVs of base64 text; HDF5 reads a key without
decoding the rest and halves in size again with ``--dtype float16``. The output is written to a
temporary file beside OUT and renamed at the end, so OUT is either absent or complete.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from envs.datadir import DataError
from features.store import HDF5FeatureWriter, TSVFeatureStore


@dataclass
class ConvertConfig:
    """Options of ``python -m features.convert``."""

    src: Path
    """the legacy feature TSV to read"""
    dst: Path
    """the HDF5 file to write (replaced atomically if it exists)"""
    dtype: str = "float32"
    """storage dtype of the HDF5 datasets: float32 (exact) or float16 (half the size)"""
    encoder: str = "unknown"
    """encoder name recorded in the file's attributes (e.g. RN50x4, resnet152)"""
    weights: str = "unknown"
    """weights tag or file recorded in the file's attributes"""
    quiet: bool = False
    """hide the progress bar"""


def convert(config: ConvertConfig) -> int:
    """Copy every row of ``config.src`` into ``config.dst``; returns the number of keys written."""
    dst = Path(config.dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=dst.name + ".", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the writer creates the file itself; mkstemp only reserved a unique name
    try:
        with TSVFeatureStore(config.src) as store:
            attrs = dict(store.attrs, encoder=config.encoder, weights=config.weights, source=Path(config.src).name)
            attrs.pop("format", None)
            keys = store.keys()
            # The temp file is renamed only when complete, so the writer's journal would buy nothing here.
            with HDF5FeatureWriter(tmp, store.dim, attrs, dtype=np.dtype(config.dtype), flush_every=len(keys), journal=False) as out:
                for key in tqdm(keys, desc=f"{Path(config.src).name} -> {dst.name}", unit="pano", disable=config.quiet):
                    scan, viewpoint = key.split("_", 1)
                    out.write(scan, viewpoint, store[key])
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(keys)


def parse_args(argv: list[str] | None) -> ConvertConfig:
    parser = argparse.ArgumentParser(prog="python -m features.convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the legacy feature TSV to read")
    parser.add_argument("dst", type=Path, help="the HDF5 file to write (replaced atomically if it exists)")
    parser.add_argument(
        "--dtype", choices=("float32", "float16"), default="float32",
        help="storage dtype: float32 (exact) or float16 (half the size) (default: %(default)s)",
    )
    parser.add_argument("--encoder", default="unknown", help="encoder name recorded in the attributes (default: %(default)s)")
    parser.add_argument("--weights", default="unknown", help="weights tag or file recorded in the attributes (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    return ConvertConfig(**vars(args))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    config = parse_args(argv)
    try:
        count = convert(config)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {count} panoramas to {config.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
