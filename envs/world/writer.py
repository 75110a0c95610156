"""Build the world: houses -> connectivity, R2R and RxR episodes, features, skyboxes and a manifest.

Everything is written into a temporary folder beside ``out`` and renamed into place at the end, so a
reader never sees half a world and two processes racing to build the same world both end up with a
complete one. A build killed at any moment leaves ``out`` absent or complete (with ``--force``, the old world,
the new one, or none when the kill falls between the two renames); its temporary folder is removed by the
next build of the same ``out``. JSON output is a pure function of the config (same seed -> byte-identical
files).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from envs.datadir import DataDir, data_error
from envs.kernel.grid import R2R_CAMERA, R2R_VFOV_DEGREES
from envs.kernel.navgraph import NavGraph
from envs.kernel.paths import DetourRule, PathRule, sample_detours, sample_paths
from envs.world import concepts
from envs.world.language import r2r_instruction, route_plan, rxr_instruction, timed_words
from envs.world.layout import COLOURS, OBJECT_KINDS, ROOM_TYPES, House, generate_house, pose_matrix
from envs.world.raycast import cast, render_skybox, surfaces
from envs.world.vl import VLConfig, build_vl
from features.hdf5 import HDF5FeatureWriter

WORLD_VERSION = 4  # bumped when the generated content changes (cache folder name); 4: RxR paths are detours
FEATURE_NAME = "world"
PATHS = PathRule(min_edges=3, max_edges=6, min_distance=5.0)  # R2R's rule, one move shorter: small houses
RXR_PATHS = DetourRule(min_length=12.0, max_length=30.0, max_edges=14, min_detour=1.4)  # about 2x R2R's length
RXR_LANGUAGES = ("hi-IN", "te-IN")  # with en-US or en-IN: every RxR path is described in three languages


@dataclass
class WorldConfig:
    """Size and content of a built-in world (every field is a ``python -m envs.world`` option)."""

    seed: int = 0
    """seed of everything: houses, paths, headings, instructions, feature noise"""
    houses_seen: int = 12
    """houses that give the train and val_seen splits"""
    houses_unseen: int = 4
    """other houses, for val_unseen"""
    houses_test: int = 4
    """other houses, for test"""
    paths_per_house: int = 60
    """paths sampled in each seen house (split between train and val_seen)"""
    eval_paths_per_house: int = 20
    """paths sampled in each unseen or test house"""
    val_seen_fraction: float = 0.15
    """share of a seen house's paths that go to val_seen"""
    second_floor_prob: float = 0.35
    """probability that a house has a second floor joined by stairs"""
    feature_dim: int = 640
    """dimension D of the view features (640 = CLIP RN50x4)"""
    feature_noise: float = 0.1
    """std of the Gaussian noise added to every feature value"""
    skyboxes: bool = True
    """render the six skybox faces of every included viewpoint"""
    image_size: int = 64
    """side of a skybox face in pixels"""
    workers: int = 0
    """processes for rendering (0: one per CPU, at most 4); the output does not depend on it"""


@dataclass
class WorldSummary:
    """What :func:`build_world` wrote."""

    out: Path
    houses: int
    viewpoints: int
    episodes: dict[str, int] = field(default_factory=dict)  # R2R instructions per split
    rxr_episodes: dict[str, int] = field(default_factory=dict)
    vocabulary: int = 0  # distinct words of the R2R train instructions
    seconds: float = 0.0
    vl: dict | None = None  # the V&L data's manifest (vl/vl.json), when built

    def describe(self) -> str:
        r2r = ", ".join(f"{k} {v}" for k, v in self.episodes.items())
        rxr = ", ".join(f"{k} {v}" for k, v in self.rxr_episodes.items())
        vl = ""
        if self.vl:
            vl = (f"; V&L: {sum(self.vl['images'].values())} images, {sum(self.vl['questions'].values())} "
                  f"questions, {self.vl['captions']} captions ({self.vl['seconds']:.1f} s)")
        return (f"Built world in {self.out}: {self.houses} houses, {self.viewpoints} viewpoints; "
                f"R2R instructions: {r2r}; RxR instructions: {rxr}; vocabulary {self.vocabulary} words{vl}; "
                f"{self.seconds:.1f} s")


# ------------------------------------------------------------------------------------------------ records


def connectivity_records(house: House) -> list[dict]:
    """The house's ``{scan}_connectivity.json`` content, in the real format."""
    n = len(house.viewpoints)
    s = surfaces(house)
    visible = house.unobstructed.copy()
    for i, a in enumerate(house.viewpoints):
        others = [j for j, b in enumerate(house.viewpoints) if j != i and
                  house.rooms[b.room].floor == house.rooms[a.room].floor]
        if not others:
            continue
        delta = np.array([house.viewpoints[j].position - a.position for j in others])
        length = np.linalg.norm(delta, axis=1)
        _, dist, _, _ = cast(s, np.full(len(others), a.room), np.broadcast_to(a.position, delta.shape),
                             delta / length[:, None])
        visible[i, others] |= dist >= length - 0.05
    records = []
    for i, v in enumerate(house.viewpoints):
        pose = pose_matrix(v.position, v.yaw)
        records.append({
            "image_id": v.id,
            "pose": [round(float(x), 6) for x in pose.reshape(-1)],
            "included": bool(v.included),
            "visible": [bool(x) for x in visible[i]],
            "unobstructed": [bool(x) for x in house.unobstructed[i]],
            "height": round(float(v.height), 6),
        })
    assert len(records) == n
    return records


def _house_work(args: tuple) -> tuple[int, list[tuple[str, np.ndarray]]]:
    """Render skyboxes and compute features of one house (runs in a worker process)."""
    config, index, tmp = args
    house = generate_house(config.seed, index, config.second_floor_prob)
    s = surfaces(house)
    label_emb = concepts.label_embeddings(concepts.label_concepts(house), config.feature_dim)
    rng = np.random.default_rng([config.seed, index, 31337])
    feats = []
    sky_dir = Path(tmp) / "skyboxes" / house.scan / "matterport_skybox_images"
    if config.skyboxes:
        sky_dir.mkdir(parents=True, exist_ok=True)
        from PIL import Image
    for v in house.viewpoints:
        if not v.included:
            continue
        weights = concepts.view_label_weights(s, v.room, v.position)
        feats.append((v.id, concepts.view_features(weights, label_emb, config.feature_noise, rng)))
        if config.skyboxes:
            faces = render_skybox(s, v.room, v.position, pose_matrix(v.position, v.yaw), config.image_size)
            for f in range(6):
                Image.fromarray(faces[f]).save(sky_dir / f"{v.id}_skybox{f}_sami.jpg", quality=90)
    return index, feats


# ------------------------------------------------------------------------------------------------- build


def build_world(out: Path, config: WorldConfig | None = None, force: bool = False,
                vl: VLConfig | None = None) -> WorldSummary:
    """Write a complete world data directory at ``out`` (atomically); see the package docstring. The V&L data
    (:mod:`envs.world.vl`) goes into ``out/vl`` unless ``vl.vl`` is False; the navigation files do not depend
    on it."""
    config = config or WorldConfig()
    vl = vl or VLConfig()
    out = Path(out)
    if out.exists() and not force:
        raise data_error(out, "already exists", "Choose another --out, or pass --force to replace it")
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-{os.getpid()}-", dir=out.parent))
    try:
        summary = _build_into(tmp, config)
        if vl.vl:
            summary.vl = build_vl(tmp, house_roles(config), config.seed, config.second_floor_prob,
                                  config.image_size, vl, worker_count(config))
        _publish(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.out = out
    summary.seconds = time.perf_counter() - started
    return summary


def remove_stale_builds(out: Path) -> None:
    """Delete the temporary folders that killed builds of ``out`` left beside it (``.{name}.build-{pid}-*`` and
    ``.{name}.old-{pid}-*`` of processes that no longer run); a build still running keeps its own."""
    for folder in out.parent.glob(f".{glob_escape(out.name)}.*-*-*"):
        kind, _, rest = folder.name[len(out.name) + 2:].partition("-")
        pid = rest.partition("-")[0]
        if kind in ("build", "old") and pid.isdigit() and not _running(int(pid)) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _publish(tmp: Path, out: Path, force: bool) -> None:
    # The old world steps aside and the new one takes its place at once; the old one is deleted only after, so
    # a kill leaves no world only between the two renames, not during a deletion.
    trash = None
    if out.exists() and force:
        trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        os.replace(out, trash / "old")
    try:
        os.rename(tmp, out)
    except OSError:
        if (out / "world.json").exists():  # another process published the same world first
            shutil.rmtree(tmp, ignore_errors=True)
            return
        if trash is not None:  # put the old world back
            os.replace(trash / "old", out)
        raise
    finally:
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)


def house_roles(config: WorldConfig) -> list[str]:
    """Each house's role (``seen``, ``unseen``, ``test``) in index order."""
    return ["seen"] * config.houses_seen + ["unseen"] * config.houses_unseen + ["test"] * config.houses_test


def worker_count(config: WorldConfig) -> int:
    """Processes for the per-house work (see ``WorldConfig.workers``)."""
    return config.workers or min(4, os.cpu_count() or 1)


def _build_into(tmp: Path, config: WorldConfig) -> WorldSummary:
    data = DataDir(tmp)
    roles = house_roles(config)
    if not roles:
        raise data_error("--houses-seen/--houses-unseen/--houses-test", "a world needs at least one house")
    houses = [generate_house(config.seed, i, config.second_floor_prob) for i in range(len(roles))]
    data.connectivity.mkdir(parents=True)
    graphs: list[NavGraph] = []
    for house in houses:
        records = connectivity_records(house)
        path = data.connectivity / f"{house.scan}_connectivity.json"
        path.write_text(json.dumps(records))
        graphs.append(NavGraph(house.scan, records, source=path))
    (data.connectivity / "scans.txt").write_text("".join(f"{h.scan}\n" for h in houses))

    r2r = _r2r_records(config, houses, graphs, roles)
    rxr = _rxr_records(config, houses, graphs, roles)

    for split, records in r2r.items():
        path = data.r2r_split(split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, ensure_ascii=False, indent=1))
    for split, records in rxr.items():
        path = data.rxr_split(split)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
            gz.write(lines)  # mtime=0 and no name: the same world gives the same bytes

    _write_features_and_skyboxes(tmp, config, houses)

    words = {w for r in r2r["train"] for text in r["instructions"] for w in re.findall(r"\w+", text.lower())}
    manifest = {
        "world_version": WORLD_VERSION, "seed": config.seed, "config": asdict(config),
        "houses": [{"scan": h.scan, "role": role, "floors": h.floors, "rooms": [r.kind for r in h.rooms],
                    "viewpoints": len(h.viewpoints), "included": sum(v.included for v in h.viewpoints),
                    "objects": [o.name for o in h.objects]} for h, role in zip(houses, roles)],
        "r2r_instructions": {k: sum(len(r["instructions"]) for r in v) for k, v in r2r.items()},
        "r2r_paths": {k: len(v) for k, v in r2r.items()},
        "rxr_instructions": {k: len(v) for k, v in rxr.items()},
        "vocabulary": {"rooms": ROOM_TYPES, "objects": OBJECT_KINDS, "colours": list(COLOURS),
                       "concepts": list(concepts.concept_vocabulary())},
        "features": {"file": f"features/{FEATURE_NAME}.h5", "dim": config.feature_dim,
                     "projection_seed": concepts.PROJECTION_SEED},
        "skybox_faces": "0 up, 1-4 around clockwise (3 = the pose's optical axis), 5 down",
        "r2r_train_vocabulary_size": len(words),
    }
    (tmp / "world.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    return WorldSummary(out=tmp, houses=len(houses), viewpoints=sum(len(h.viewpoints) for h in houses),
                        episodes=manifest["r2r_instructions"], rxr_episodes=manifest["rxr_instructions"],
                        vocabulary=len(words))


def _split_of(role: str, k: int, n_val: int) -> str:
    """The split of a house's k-th path: seen houses give val_seen (the first ``n_val``) and train."""
    return {"unseen": "val_unseen", "test": "test"}.get(role, "val_seen" if k < n_val else "train")


def _r2r_records(config: WorldConfig, houses: list[House], graphs: list[NavGraph], roles: list[str]
                 ) -> dict[str, list[dict]]:
    """R2R split records: shortest paths of 3-6 moves, three short English instructions each."""
    out: dict[str, list[dict]] = {"train": [], "val_seen": [], "val_unseen": [], "test": []}
    path_id = 0
    for index, (house, graph, role) in enumerate(zip(houses, graphs, roles)):
        rng = np.random.default_rng([config.seed, index, 4243])
        count = config.paths_per_house if role == "seen" else config.eval_paths_per_house
        paths = sample_paths(graph, rng, PATHS, count, shuffle=True)
        n_val = int(round(len(paths) * config.val_seen_fraction)) if role == "seen" else 0
        for k, path in enumerate(paths):
            split = _split_of(role, k, n_val)
            heading = round(float(rng.uniform(0, 2 * math.pi)), 3)
            plan = route_plan(house, [graph.ix(vp) for vp in path], heading)
            instructions = [r2r_instruction(plan, rng) for _ in range(3)]
            record = {"distance": round(graph.path_length(path), 2), "scan": house.scan, "path_id": path_id,
                      "path": path, "heading": heading, "instructions": instructions}
            if split == "test":
                record = {"scan": house.scan, "path_id": path_id, "path": path[:1], "heading": heading,
                          "instructions": instructions}
            out[split].append(record)
            path_id += 1
    return out


def _rxr_records(config: WorldConfig, houses: list[House], graphs: list[NavGraph], roles: list[str]
                 ) -> dict[str, list[dict]]:
    """RxR guide records: detours (not shortest paths, about twice R2R's length) through named rooms and
    landmarks, each described in English (en-US or en-IN), Hindi and Telugu, with word timings."""
    out: dict[str, list[dict]] = {"train": [], "val_seen": [], "val_unseen": [], "test": []}
    path_id = instruction_id = 0
    for index, (house, graph, role) in enumerate(zip(houses, graphs, roles)):
        rng = np.random.default_rng([config.seed, index, 4244])
        count = config.paths_per_house if role == "seen" else config.eval_paths_per_house
        paths = sample_detours(graph, rng, RXR_PATHS, count)
        n_val = int(round(len(paths) * config.val_seen_fraction)) if role == "seen" else 0
        for k, path in enumerate(paths):
            split = _split_of(role, k, n_val)
            heading = round(float(rng.uniform(0, 2 * math.pi)), 3)
            ix = [graph.ix(vp) for vp in path]
            plan = route_plan(house, ix, heading)
            start_room = house.rooms[house.viewpoints[ix[0]].room].kind
            facing = _facing_object(house, ix[0], heading)
            english = "en-US" if rng.random() < 0.5 else "en-IN"
            for language in (english, *RXR_LANGUAGES):
                text = rxr_instruction(plan, language, start_room, facing, rng)
                out[split].append({
                    "path_id": path_id, "split": "test_standard" if split == "test" else split,
                    "scan": house.scan, "heading": float(heading), "path": path[:1] if split == "test" else path,
                    "instruction_id": instruction_id, "annotator_id": int(rng.integers(0, 40)),
                    "language": language, "instruction": text, "timed_instruction": timed_words(text, rng),
                    "edit_distance": round(float(rng.uniform(0.0, 0.2)), 4),
                })
                instruction_id += 1
            path_id += 1
    return out


def _facing_object(house: House, start: int, heading: float):
    """The object of the start room nearest to straight ahead (within 45°), for "you are facing ..."."""
    from envs.world.language import _objects_ahead
    v = house.viewpoints[start]
    ahead = [t for t in _objects_ahead(house, v.room, v.position, heading, 10.0) if t[0] < math.radians(45)]
    return ahead[0][1] if ahead else None


def _write_features_and_skyboxes(tmp: Path, config: WorldConfig, houses: list[House]) -> None:
    workers = worker_count(config)
    jobs = [(config, i, str(tmp)) for i in range(len(houses))]
    attrs = {"encoder": "world-concepts", "weights": f"world-v{WORLD_VERSION}-seed{config.seed}",
             "image_w": R2R_CAMERA.width, "image_h": R2R_CAMERA.height, "vfov": R2R_VFOV_DEGREES, "projection_seed": concepts.PROJECTION_SEED}
    writer = HDF5FeatureWriter(tmp / "features" / f"{FEATURE_NAME}.h5", config.feature_dim, attrs, flush_every=10_000)
    try:
        if workers > 1 and len(houses) > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_house_work, jobs))
        else:
            results = [_house_work(job) for job in jobs]
        for index, feats in sorted(results, key=lambda r: r[0]):
            for vp, array in feats:
                writer.write(houses[index].scan, vp, array)
    finally:
        writer.close()
