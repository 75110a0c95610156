"""The built-in world: real formats that load through the project's loaders, sound paths and instructions,
features that carry the landmarks, skyboxes, determinism."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from envs.datadir import DataDir, DataError
from envs.kernel.navgraph import load_graph, read_scans_txt
from envs.world import WorldConfig, build_world
from envs.world.__main__ import main
from envs.world.concepts import concept_embeddings, concept_index, view_rays
from envs.world.layout import generate_house, pose_matrix
from envs.world.raycast import face_directions

SMALL = dict(houses_seen=2, houses_unseen=1, houses_test=1, paths_per_house=12, eval_paths_per_house=6,
             image_size=16, workers=1, feature_dim=256)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w") / "world"
    build_world(out, WorldConfig(**SMALL))
    return out


def _r2r(world: Path, split: str) -> list[dict]:
    return json.loads(DataDir(world).r2r_split(split).read_text())


def test_graphs_load_and_are_connected(world):
    scans = read_scans_txt(world / "connectivity")
    assert len(scans) == 4 and all(len(s) == 11 for s in scans)
    for scan in scans:
        g = load_graph(world / "connectivity", scan)
        assert all(len(vp) == 32 and int(vp, 16) >= 0 for vp in g.ids)
        assert (~g.included).sum() >= 0 and g.included.sum() >= 8
        inc = np.flatnonzero(g.included)
        assert np.isfinite(g.distances[np.ix_(inc, inc)]).all(), f"{scan} graph is not connected"
        assert (g.unobstructed == g.unobstructed.T).all()
        records = json.loads((world / "connectivity" / f"{scan}_connectivity.json").read_text())
        assert set(records[0]) == {"image_id", "pose", "included", "visible", "unobstructed", "height"}


def test_r2r_paths_are_shortest_walks_with_right_distance(world):
    total = 0
    for split in ("train", "val_seen", "val_unseen"):
        for ep in _r2r(world, split):
            g = load_graph(world / "connectivity", ep["scan"])
            path = ep["path"]
            assert 4 <= len(path) <= 7 and len(ep["instructions"]) == 3
            assert abs(g.path_length(path) - ep["distance"]) <= 0.005  # path_length raises on a non-edge
            assert abs(g.distance(path[0], path[-1]) - ep["distance"]) <= 0.005
            assert ep["distance"] >= 5.0
            total += 1
    assert total > 20
    test = _r2r(world, "test")
    assert test and all(len(ep["path"]) == 1 and "distance" not in ep for ep in test)


def test_splits_use_the_right_houses_and_disjoint_paths(world):
    scans = read_scans_txt(world / "connectivity")
    seen, unseen, test = set(scans[:2]), {scans[2]}, {scans[3]}
    train, val_seen = _r2r(world, "train"), _r2r(world, "val_seen")
    assert {e["scan"] for e in train} <= seen and {e["scan"] for e in val_seen} <= seen
    assert {e["scan"] for e in _r2r(world, "val_unseen")} == unseen
    assert {e["scan"] for e in _r2r(world, "test")} == test
    pairs = lambda eps: {(e["scan"], e["path"][0], e["path"][-1]) for e in eps}  # noqa: E731
    assert not pairs(train) & pairs(val_seen)


def test_instructions_name_the_goal_landmark(world):
    manifest = json.loads((world / "world.json").read_text())
    objects = {h["scan"]: h["objects"] for h in manifest["houses"]}
    for ep in _r2r(world, "train"):
        for text in ep["instructions"]:
            named = [o for o in objects[ep["scan"]] if o in text]
            assert named, text
            # the stop sentence names an object of the goal's house
            last = text.rsplit(".", 2)[-2]
            assert any(o in last for o in named), text


def test_instructions_keep_some_turns_in_order_and_name_landmarks_for_the_rest():
    from envs.world.language import TURN_KEEP, Step, r2r_instruction
    from envs.world.layout import Obj

    sofa = Obj(kind="sofa", colour="red", room=0, box=(0, 1, 0, 1, 0, 1))
    fridge = Obj(kind="fridge", colour="white", room=1, box=(0, 1, 0, 1, 0, 1))
    plan = [Step("turn", "left"), Step("pass", "left", sofa), Step("enter", room="kitchen"),
            Step("turn", "right"), Step("pass", "right", fridge), Step("stop", obj=fridge, room="kitchen")]
    kept = 0
    for seed in range(300):
        text = r2r_instruction(plan, np.random.default_rng(seed)).lower()
        words = [w.strip(".,") for w in text.split()]
        turns = [w for w in words if w in ("left", "right", "around")]
        assert turns in ([], ["left"], ["right"], ["left", "right"]), text  # right words, right order
        if "left" not in turns:  # a dropped turn: the landmark says where to head
            assert "towards the red sofa" in text or "to the red sofa" in text, text
        assert "white fridge" in text and "kitchen" in text
        kept += len(turns)
    assert abs(kept / 600 - TURN_KEEP) < 0.06


def test_rxr_has_four_languages_and_timings(world):
    langs = set()
    for split in ("train", "val_seen", "val_unseen", "test"):
        path = DataDir(world).rxr_split(split)
        assert path.name.endswith(".jsonl.gz")
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        assert rows
        for r in rows:
            assert set(r) == {"instruction_id", "path_id", "scan", "path", "heading", "instruction", "language",
                              "timed_instruction", "split", "annotator_id", "edit_distance"}
            assert [w["word"] for w in r["timed_instruction"]] == r["instruction"].split()
            assert all(w["end_time"] > w["start_time"] for w in r["timed_instruction"])
            langs.add(r["language"])
            if r["language"] == "hi-IN":
                assert any("\u0900" <= ch <= "\u097f" for ch in r["instruction"])
            if r["language"] == "te-IN":
                assert any("\u0c00" <= ch <= "\u0c7f" for ch in r["instruction"])
    assert langs == {"en-US", "en-IN", "hi-IN", "te-IN"}


def test_features_cover_every_included_viewpoint(world):
    import h5py
    with h5py.File(world / "features" / "world.h5", "r") as f:
        keys = set(f.keys())
        for scan in read_scans_txt(world / "connectivity"):
            g = load_graph(world / "connectivity", scan)
            for vp in g.included_ids:
                assert f[f"{scan}_{vp}"].shape == (36, 256)
            assert not any(f"{scan}_{vp}" in keys for vp, inc in zip(g.ids, g.included) if not inc)


def test_features_point_towards_the_named_landmark(world):
    """Oracle: at the start, the level view whose feature best matches the first landmark the instruction
    names points at that landmark far more often than a random view (chance: 3 of 12 headings within 45°)."""
    import h5py
    from envs.world.language import route_plan
    emb = concept_embeddings(256)
    hits = trials = 0
    with h5py.File(world / "features" / "world.h5", "r") as f:
        for i, scan in enumerate(read_scans_txt(world / "connectivity")[:2]):
            house = generate_house(0, i, WorldConfig().second_floor_prob)
            assert house.scan == scan
            g = load_graph(world / "connectivity", scan)
            for ep in [e for e in _r2r(world, "train") + _r2r(world, "val_seen") if e["scan"] == scan]:
                plan = route_plan(house, [g.ix(v) for v in ep["path"]], ep["heading"])
                start = house.viewpoints[g.ix(ep["path"][0])]
                feats = f[f"{scan}_{ep['path'][0]}"][12:24]  # the 12 level views
                for step in plan:
                    if step.kind != "pass" or step.obj.room != start.room:
                        continue
                    best = int(np.argmax(feats @ emb[concept_index(step.obj.name)]))
                    a, b = start.position, step.obj.centre
                    towards = math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])) % 360
                    hits += abs((30 * best - towards + 180) % 360 - 180) <= 45
                    trials += 1
                # and at the goal, the view matching the object of "stop next to ..." faces that object
                goal = house.viewpoints[g.ix(ep["path"][-1])]
                obj = plan[-1].obj
                best = int(np.argmax(f[f"{scan}_{goal.id}"][12:24] @ emb[concept_index(obj.name)]))
                towards = math.degrees(math.atan2(*(obj.centre[:2] - goal.position[:2]))) % 360
                hits += abs((30 * best - towards + 180) % 360 - 180) <= 45
                trials += 1
    assert trials >= 20
    assert hits / trials > 0.6, (hits, trials)


def test_skyboxes_exist_with_the_right_size(world):
    from PIL import Image
    scan = read_scans_txt(world / "connectivity")[0]
    g = load_graph(world / "connectivity", scan)
    folder = world / "skyboxes" / scan / "matterport_skybox_images"
    for vp in g.included_ids[:3]:
        for face in range(6):
            with Image.open(folder / f"{vp}_skybox{face}_sami.jpg") as im:
                assert im.size == (16, 16) and im.mode == "RGB"
    excluded = [vp for vp, inc in zip(g.ids, g.included) if not inc]
    assert all(not (folder / f"{vp}_skybox0_sami.jpg").exists() for vp in excluded)


def test_cube_faces_follow_mattersim():
    """Face 0 looks up, 5 down, 3 along the pose's optical axis, 1-4 go round clockwise from 180 degrees."""
    for yaw in (0.0, 1.0):
        d = face_directions(9, pose_matrix(np.zeros(3), yaw))[:, 4, 4]  # face centres
        assert d[0, 2] > 0.99 and d[5, 2] < -0.99
        for face, offset in ((3, 0), (4, 90), (1, 180), (2, 270)):
            h = math.radians(math.degrees(yaw) + offset)
            assert np.allclose(d[face], [math.sin(h), math.cos(h), 0], atol=1e-5)
        top_row = face_directions(9, pose_matrix(np.zeros(3), yaw))[3, 0, 4]
        assert top_row[2] > 0  # row 0 of a side face is its top


def test_view_rays_follow_mattersim_order():
    rays = view_rays().mean(axis=1)
    assert rays[0, 2] < -0.3 and rays[12 + 3, 0] > 0.8 and abs(rays[12 + 3, 1]) < 1e-5 and rays[24, 2] > 0.3  # ix 15 = heading 90: +x


def test_json_is_deterministic(tmp_path):
    cfg = WorldConfig(**{**SMALL, "houses_seen": 1, "houses_test": 0, "skyboxes": False})
    a, b = tmp_path / "a", tmp_path / "b"
    build_world(a, cfg)
    build_world(b, cfg)
    files = [p.relative_to(a) for p in a.rglob("*") if p.suffix in (".json", ".gz", ".txt")]
    assert len(files) > 5
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    other = tmp_path / "c"
    build_world(other, WorldConfig(**{**SMALL, "houses_seen": 1, "houses_test": 0, "skyboxes": False, "seed": 1}))
    assert (other / "R2R" / "R2R_train.json").read_bytes() != (a / "R2R" / "R2R_train.json").read_bytes()


def test_cli_builds_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--out", str(out), "--houses-seen", "1", "--houses-unseen", "0", "--houses-test", "0",
            "--paths-per-house", "5", "--no-skyboxes", "--feature-dim", "32", "--workers", "1"]
    assert main(args) == 0
    assert "1 houses" in capsys.readouterr().out
    assert not (out / "skyboxes").exists() and (out / "world.json").exists()
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
    with pytest.raises(DataError):
        build_world(out, WorldConfig())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_clip_features_go_through_the_extraction_command(tmp_path, monkeypatch):
    """``--clip-encoder`` hands the world's skyboxes to ``python -m features.extract`` (tested on its own)."""
    import features.extract
    from envs.world.__main__ import main as world_main

    calls = []
    monkeypatch.setattr(features.extract, "main", lambda argv: calls.append(argv) or 0)
    out = tmp_path / "w"
    assert world_main(["--out", str(out), "--houses-seen", "1", "--houses-unseen", "1", "--houses-test", "1",
                       "--paths-per-house", "4", "--eval-paths-per-house", "2", "--image-size", "16",
                       "--clip-encoder", "RN50", "--clip-weights", "w.pt"]) == 0
    assert calls == [["--encoder", "RN50", "--data-dir", str(out), "--out", str(out / "features" / "clip-rn50.h5"),
                      "--weights", "w.pt"]]
    assert world_main(["--out", str(tmp_path / "n"), "--houses-seen", "1", "--houses-unseen", "1",
                       "--houses-test", "1", "--paths-per-house", "4", "--eval-paths-per-house", "2",
                       "--no-skyboxes", "--clip-encoder", "RN50"]) == 2


def test_rxr_paths_are_detours_about_twice_r2r(world):
    """RxR's paths are not shortest paths and are about twice R2R's length; each instruction describes the
    rooms of its own path, so it tells the detour apart from the shortest way."""
    from envs.kernel.navgraph import load_graphs
    from tasks.r2r import load_r2r
    from tasks.rxr import load_rxr

    graphs = load_graphs(world / "connectivity")
    rxr = load_rxr(world, "train")
    r2r = load_r2r(world, "train")
    lengths = [graphs[e.scan].path_length(e.path) for e in rxr]
    shortest = [graphs[e.scan].distance(e.path[0], e.path[-1]) for e in rxr]
    assert all(length >= 1.4 * s - 1e-9 for length, s in zip(lengths, shortest))  # every one a detour
    assert all(len(set(e.path)) == len(e.path) for e in rxr)  # no viewpoint visited twice
    ratio = np.mean(lengths) / np.mean([graphs[e.scan].path_length(e.path) for e in r2r])
    assert 1.6 < ratio < 2.6, ratio
    from envs.world.layout import ROOM_TYPES

    for e in rxr[:30]:
        if e.language.startswith("en"):
            named = {room for room in ROOM_TYPES if room in e.instruction.lower()}
            assert len(named) >= 2, e.instruction  # the start room and the rooms it passes through
