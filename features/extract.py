"""Extract CLIP features of the 36 discretized views of every viewpoint into an HDF5 feature file.

Views come from the data directory's skyboxes (rendered by :mod:`envs.kernel.skybox`, MatterSim's geometry), from
the installed MatterSim's own OpenGL renderer (``--mattersim``), or from a folder of pre-rendered view images
(``--views-dir``: ``{scan}/{viewpoint}_rgb/{0..35}.jpg`` as EnvDrop's ``semantic_views``, or
``{scan}/{viewpoint}/{0..35}.jpg|png``). Each viewpoint's ``[36, D]`` CLIP embeddings
(unnormalised ``encode_image``, view order ``heading_index + 12 * elevation_index``) go through
:class:`features.hdf5.HDF5FeatureWriter`, whose journal makes a killed run resume where it stopped.

Splitting: under ``torchrun`` (or with ``--rank/--world-size``) rank r takes every world-size-th key into
``OUT.rank{r}-of-{w}.h5``; rank 0 waits for every part, merges them into ``OUT`` and removes them.

``--grid`` encodes a folder of images instead (:mod:`features.grid`: grid features for VQA and captioning).

Example::

    python -m features.extract --encoder RN50x4 --weights RN50x4.pt --data-dir DATA --out DATA/features/clip-rn50x4.h5
    python -m features.extract --grid --encoder RN50 --images DATA/vl/images --out DATA/vl/grid-rn50.h5 --dtype float16
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from envs.cli import command, parse_config
from envs.datadir import DataDir, DataError, data_error
from envs.kernel.backends import MatterSimSimulator, make_simulator
from envs.kernel.grid import ELEVATIONS, R2R_CAMERA, R2R_VFOV_DEGREES, VIEW_COUNT
from envs.kernel.navgraph import load_graph, read_scans_txt
from envs.kernel.skybox import has_skybox, load_skybox, render_panorama
from features.encoders import ENCODERS, load_encoder
from features.grid import GridStats, extract_grid, list_images
from features.hdf5 import HDF5FeatureWriter
from features.layout import feature_key
from features.store import open_features
from features.tsv import write_tsv
from features.views import read_views, view_folder

EXTRACT_VERSION = 1  # bump when what a feature means changes


@dataclass
class ExtractConfig:
    """Options of ``python -m features.extract``."""

    out: Path
    """the HDF5 file to write (an interrupted run resumes)"""
    data_dir: Path | None = None
    """data directory with connectivity/ (and skyboxes/ unless --views-dir is given); with --grid and no
    --images, its vl/images"""
    grid: bool = False
    """extract grid features of images (ResNet map before attention pooling, ViT patch tokens; [h*w, C] per
    image, for VQA and captioning) instead of the 36 pooled views of each panorama"""
    images: Path | None = None
    """with --grid: the folder of images (.jpg/.png) to encode"""
    encoder: str = "RN50x4"
    """CLIP variant"""
    weights: str | None = None
    """open_clip tag (e.g. openai; needs a network) or a local weights file (state dict, checkpoint,
    .safetensors, OpenAI .pt); omitted = random init (testing only)"""
    views_dir: Path | None = None
    """read pre-rendered views {scan}/{vp}_rgb/{i}.jpg from here instead of rendering skyboxes"""
    mattersim: bool = False
    """render the skyboxes with the installed MatterSim (OpenGL) instead of envs.kernel.skybox"""
    scans: list[str] | None = None
    """only these scans (default: every scan in connectivity/scans.txt)"""
    viewpoints: list[str] | None = None
    """only these viewpoint ids of those scans (e.g. to redo a few after replacing their skyboxes)"""
    batch_size: int = 36
    """images per forward pass"""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """torch device (under torchrun, cuda uses cuda:LOCAL_RANK)"""
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    """model precision: fp32, fp16 (CLIP-ViL's, GPU) or bf16"""
    crop: Literal["center", "none"] = "center"
    """center: CLIP's resize + centre crop (CLIP-ViL); none: whole 4:3 view squeezed to the model's square"""
    channel_order: Literal["rgb", "bgr_as_rgb"] = "rgb"
    """rgb (correct) or bgr_as_rgb (reproduces CLIP-ViL's released features, which fed BGR as RGB)"""
    dtype: Literal["float32", "float16"] = "float32"
    """storage dtype (float16 halves a grid feature file: RN50's is 200 KB per image in float16)"""
    tsv: Path | None = None
    """also write the legacy TSV here"""
    rank: int = int(os.environ.get("RANK", 0))
    """this process's share of the keys (its default comes from $RANK, which torchrun sets)"""
    world_size: int = int(os.environ.get("WORLD_SIZE", 1))
    """number of processes sharing the keys (its default comes from $WORLD_SIZE, which torchrun sets)"""
    merge_timeout: float = 7 * 24 * 3600.0
    """seconds rank 0 waits for the other ranks' part files before giving up"""
    seed: int = 0
    """seed for random-init weights (so a resumed random-init run continues with the same model)"""
    quiet: bool = False
    """hide the progress bar"""
    mattersim_module: object | None = field(default=None, repr=False, metadata={"cli": False})
    """a stand-in for ``import MatterSim`` (tests); None imports the real one"""


@dataclass
class ExtractStats:
    keys: int = 0  # keys assigned to this rank
    skipped: int = 0  # already done by an earlier run
    written: int = 0
    missing: list[str] = field(default_factory=list)  # keys without a view source
    load_s: float = 0.0  # reading skyboxes / images
    render_s: float = 0.0
    encode_s: float = 0.0


class MatterSimViews:
    """The 36 views of a viewpoint as the compiled MatterSim renders them (its OpenGL path, BGR buffers).

    Taken as EnvDrop's ``precompute_img_features.py`` took them: a new episode looking 30 degrees down at
    heading 0, then 35 discretized turns (right, and right-and-up after every twelfth), so view ``i`` is
    MatterSim's ``viewIndex`` ``i``. ``module`` replaces ``import MatterSim`` (tests pass a stand-in).
    """

    def __init__(self, skyboxes: Path, connectivity: Path, module: object | None = None) -> None:
        try:
            sim = MatterSimSimulator(module) if module is not None else make_simulator("mattersim")
        except ImportError as err:
            raise DataError(f"--mattersim: {err}") from None
        sim.setDatasetPath(skyboxes)
        sim.setNavGraphPath(connectivity)
        sim.setCameraResolution(R2R_CAMERA.width, R2R_CAMERA.height)
        sim.setCameraVFOV(R2R_CAMERA.vfov)
        sim.setDiscretizedViewingAngles(True)
        sim.setRenderingEnabled(True)
        sim.setBatchSize(1)
        sim.initialize()
        self.sim = sim

    def __call__(self, scan: str, viewpoint: str) -> torch.Tensor:
        """``[36, 3, 480, 640]`` uint8 RGB in view-index order."""
        views = []
        for ix in range(VIEW_COUNT):
            if ix == 0:
                self.sim.newEpisode([scan], [viewpoint], [0.0], [ELEVATIONS[0]])  # 30 degrees down
            else:
                self.sim.makeAction([0], [1.0], [1.0 if ix % 12 == 0 else 0.0])
            state = self.sim.getState()[0]
            if state.viewIndex != ix:
                raise RuntimeError(f"MatterSim is at view {state.viewIndex} where view {ix} was expected; "
                                   "is setDiscretizedViewingAngles(True) honoured by this build?")
            bgr = np.asarray(state.rgb)
            views.append(torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1))
        return torch.stack(views)


def list_keys(config: ExtractConfig) -> tuple[list[tuple[str, str]], list[str]]:
    """Every included viewpoint of the chosen scans: ``(available (scan, vp) pairs, keys without a source)``."""
    data = DataDir(config.data_dir)
    conn = data.require(data.connectivity, "connectivity folder")
    scans = config.scans or read_scans_txt(conn)
    available, missing = [], []
    wanted = None if config.viewpoints is None else set(config.viewpoints)
    listed: set[str] = set()
    for scan in scans:
        graph = load_graph(conn, scan)
        for vp in graph.included_ids:
            if wanted is not None and vp not in wanted:
                continue
            listed.add(vp)
            if config.views_dir is not None:
                found = view_folder(Path(config.views_dir), scan, vp) is not None
            else:
                found = has_skybox(data.skyboxes, scan, vp)
            (available if found else missing).append((scan, vp) if found else feature_key(scan, vp))
    if wanted is not None:
        unknown = wanted - listed
        if unknown:
            raise data_error(conn, f"--viewpoints {' '.join(sorted(unknown))} are not included viewpoints of "
                             f"{', '.join(scans) if config.scans else 'any scan in scans.txt'}",
                             "Check the ids (and --scans) against the connectivity files")
    return available, missing


def _attrs(config: ExtractConfig, encoder) -> dict:
    attrs = {
        "encoder": encoder.name,
        "weights": encoder.weights,
        "image_size": encoder.image_size,
        "image_w": R2R_CAMERA.width,
        "image_h": R2R_CAMERA.height,
        "vfov_degrees": float(R2R_VFOV_DEGREES),
        "crop": config.crop,
        "channel_order": config.channel_order,
        "precision": config.precision,
        "source": "views" if config.views_dir is not None else "mattersim" if config.mattersim else "skyboxes",
        "features": "CLIP encode_image (unnormalised), 36 views in MatterSim viewIndex order",
        "extract_version": EXTRACT_VERSION,
    }
    if encoder.weights == "random":
        attrs["seed"] = config.seed
    return attrs


def part_path(out: Path, rank: int, world_size: int) -> Path:
    """Where rank ``rank`` writes its share when the work is split."""
    return out.with_name(f"{out.stem}.rank{rank}-of-{world_size}{out.suffix}")


def _encoder(config: ExtractConfig, device: str):
    torch.manual_seed(config.seed)
    return load_encoder(config.encoder, config.weights, device, config.precision, config.crop, config.channel_order)


def extract_grid_features(config: ExtractConfig) -> GridStats:
    """``--grid``: the grid features of every image of ``--images`` (or ``DATA/vl/images``)."""
    folder = config.images or (Path(config.data_dir) / "vl" / "images" if config.data_dir else None)
    if folder is None:
        raise data_error("--grid", "no images to encode", "Pass --images DIR (or --data-dir DATA with vl/images)")
    images = list_images(folder)
    encoder = _encoder(config, config.device)
    attrs = {"encoder": encoder.name, "weights": encoder.weights, "image_size": encoder.image_size,
             "crop": config.crop, "channel_order": config.channel_order, "precision": config.precision,
             "source": str(folder)}
    if encoder.weights == "random":
        attrs["seed"] = config.seed
    dtype = np.float16 if config.dtype == "float16" else np.float32
    return extract_grid(encoder, images, Path(config.out), attrs, config.batch_size, dtype, config.quiet)


def extract(config: ExtractConfig) -> ExtractStats:
    """Run the extraction of this rank's share (and the merge, on rank 0 of a split run)."""
    if config.encoder.replace("/", "-") not in ENCODERS:
        raise DataError(f"unknown encoder {config.encoder!r}; choose one of {', '.join(ENCODERS)}")
    if config.data_dir is None:
        raise data_error("--data-dir", "panorama extraction needs a data directory",
                         "Pass --data-dir DATA (or --grid --images DIR for grid features of images)")
    if not 0 <= config.rank < config.world_size:
        raise DataError(f"--rank {config.rank} must be in [0, --world-size {config.world_size})")
    device = config.device
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    encoder = _encoder(config, device)
    available, missing = list_keys(config)
    stats = ExtractStats(missing=missing)
    if missing:
        where = config.views_dir or DataDir(config.data_dir).skyboxes
        print(f"features.extract: {len(missing)} viewpoints have no views under {where} and are skipped "
              f"(e.g. {missing[0]})", file=sys.stderr)
    if not available:
        raise data_error(config.views_dir or DataDir(config.data_dir).skyboxes, "no viewpoint has views to encode",
                         "Check --data-dir / --views-dir and the scans listed in connectivity/scans.txt")
    mine = available[config.rank :: config.world_size]
    stats.keys = len(mine)
    out = Path(config.out)
    target = out if config.world_size == 1 else part_path(out, config.rank, config.world_size)
    attrs = _attrs(config, encoder)
    dtype = np.float16 if config.dtype == "float16" else np.float32
    conn = DataDir(config.data_dir).connectivity
    with HDF5FeatureWriter(target, encoder.embed_dim, attrs, dtype=dtype) as writer:
        todo = [(scan, vp) for scan, vp in mine if feature_key(scan, vp) not in writer]
        stats.skipped = len(mine) - len(todo)
        bar = tqdm(todo, desc=f"{encoder.name} rank {config.rank}", unit="vp", disable=config.quiet,
                   position=config.rank)
        read = encoder.columns_read(R2R_CAMERA.width, R2R_CAMERA.height)
        rendered = None
        mattersim = MatterSimViews(DataDir(config.data_dir).skyboxes, conn, config.mattersim_module) \
            if config.mattersim and config.views_dir is None and todo else None
        for scan, vp in bar:
            start = time.perf_counter()
            if config.views_dir is not None:
                views = read_views(view_folder(Path(config.views_dir), scan, vp))  # [36, 3, H, W]
                stats.load_s += time.perf_counter() - start
            elif mattersim is not None:
                views = mattersim(scan, vp).to(encoder.device)  # [36, 3, 480, 640]
                stats.render_s += time.perf_counter() - start
            else:
                faces = load_skybox(DataDir(config.data_dir).skyboxes, scan, vp).to(encoder.device)  # [6, 3, S, S]
                graph = load_graph(conn, scan)
                rotation = torch.from_numpy(graph.poses[graph.ix(vp), :3, :3].copy())
                loaded = time.perf_counter()
                # only the columns the encoder's resize and crop read; the rest stay black
                views = render_panorama(faces, rotation, *R2R_CAMERA, columns=read,
                                        out=rendered)  # [36, 3, 480, 640]
                rendered = views  # the next viewpoint renders into the same memory
                stats.load_s += loaded - start
                stats.render_s += time.perf_counter() - loaded
            start = time.perf_counter()
            pooled = torch.cat([encoder.pooled(views[i : i + config.batch_size])
                                for i in range(0, VIEW_COUNT, config.batch_size)])  # [36, D]
            stats.encode_s += time.perf_counter() - start
            writer.write(scan, vp, pooled.cpu().numpy())
            stats.written += 1
    pairs = {feature_key(scan, vp): (scan, vp) for scan, vp in available}  # scan ids may hold "_" too
    if config.world_size > 1 and config.rank == 0:
        _merge(out, config, encoder.embed_dim, attrs, dtype, pairs)
    if config.tsv is not None and config.rank == 0:
        with open_features(out) as store:
            rows = (pairs[key] + (store[key],) for key in store.keys() if key in pairs)
            write_tsv(config.tsv, rows)
    return stats


def _merge(out: Path, config: ExtractConfig, dim: int, attrs: dict, dtype: type, pairs: dict) -> None:
    """Rank 0: wait until every rank's part file exists (a writer makes it only when complete), merge them."""
    parts = [part_path(out, r, config.world_size) for r in range(config.world_size)]
    deadline = time.monotonic() + config.merge_timeout
    while not all(p.exists() for p in parts):
        if time.monotonic() > deadline:
            waiting = [str(p) for p in parts if not p.exists()]
            raise data_error(out, f"gave up waiting for the part files {waiting}",
                             "Finish those ranks (rerun them: they resume), then rerun rank 0 to merge")
        time.sleep(2.0)
    with HDF5FeatureWriter(out, dim, attrs, dtype=dtype) as writer:
        for part in parts:
            with open_features(part) as store:
                for key in store.keys():
                    if key not in writer:
                        writer.write(*pairs[key], store[key])
    for part in parts:
        part.unlink()


def parse_args(argv: list[str] | None) -> ExtractConfig:
    return parse_config(ExtractConfig, argv, prog="python -m features.extract", description=__doc__.splitlines()[0],
                        choices={"encoder": ENCODERS}, exclusive=[("views_dir", "mattersim"), ("grid", "mattersim")])


@command
def main(argv: list[str]) -> int:
    """Command-line entry point; returns the exit status."""
    config = parse_args(argv)
    if config.grid:
        grid = extract_grid_features(config)
        print(f"features.extract --grid: {grid.written} images written, {grid.skipped} already done, "
              f"{grid.seconds:.1f} s -> {config.out}")
        return 0
    try:
        stats = extract(config)
    except ImportError as err:  # the compiled MatterSim is missing or broken: the user's installation
        if not config.mattersim:
            raise
        raise DataError(f"--mattersim: {err}") from None
    total = stats.load_s + stats.render_s + stats.encode_s
    print(f"features.extract: {stats.written} viewpoints written, {stats.skipped} already done "
          f"(rank {config.rank}/{config.world_size}); load {stats.load_s:.1f}s, render {stats.render_s:.1f}s, "
          f"encode {stats.encode_s:.1f}s of {total:.1f}s -> {config.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
