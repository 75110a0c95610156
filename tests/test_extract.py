"""python -m features.extract: synthetic skyboxes, real rendered views, kill-and-resume, split ranks, TSV."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from envs.kernel.navgraph import load_graph, read_scans_txt
from envs.kernel.skybox import load_skybox, render_panorama
from features.encoders import load_encoder
from features.extract import ExtractConfig, MatterSimViews, extract, main, part_path
from features.store import open_features

ROOT = Path(__file__).resolve().parents[1]
SCAN = "synthScan"
VIEWPOINTS = ["vpa", "vpb"]  # included; "vpx" is excluded and must not be extracted


def _pose(x: float, yaw: float) -> list[float]:
    c, s = math.cos(yaw), math.sin(yaw)
    return [c, 0.0, s, x, -s, 0.0, c, 0.0, 0.0, -1.0, 0.0, 1.5, 0.0, 0.0, 0.0, 1.0]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A one-scan data directory: connectivity with Matterport-style poses and raw-layout skyboxes."""
    root = tmp_path_factory.mktemp("data")
    ids = VIEWPOINTS + ["vpx"]
    records = [
        {"image_id": vp, "pose": _pose(float(i), 0.4 * i), "included": vp != "vpx", "height": 1.5,
         "visible": [j != i for j in range(len(ids))], "unobstructed": [j != i for j in range(len(ids))]}
        for i, vp in enumerate(ids)
    ]
    (root / "connectivity").mkdir()
    (root / "connectivity" / f"{SCAN}_connectivity.json").write_text(json.dumps(records))
    (root / "connectivity" / "scans.txt").write_text(SCAN + "\n")
    folder = root / "skyboxes" / SCAN / "matterport_skybox_images"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for vp in VIEWPOINTS:
        for f in range(6):
            face = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
            Image.fromarray(face).resize((48, 48), Image.BILINEAR).save(folder / f"{vp}_skybox{f}_sami.jpg")
    return root


@pytest.fixture(scope="module")
def full_run(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "rn50.h5"
    tsv = out.with_suffix(".tsv")
    assert main(["--encoder", "RN50", "--data-dir", str(data_dir), "--out", str(out), "--tsv", str(tsv),
                 "--batch-size", "12", "--device", "cpu", "--quiet"]) == 0
    return out


def _same_file(a: Path, b: Path) -> None:
    with open_features(a) as x, open_features(b) as y:
        assert sorted(x.keys()) == sorted(y.keys())
        for key in x.keys():
            np.testing.assert_array_equal(x[key], y[key])


@pytest.mark.slow
def test_synthetic_skyboxes_extract_every_included_viewpoint(full_run, data_dir):
    with open_features(full_run) as store:
        assert sorted(store.keys()) == [f"{SCAN}_{vp}" for vp in VIEWPOINTS]
        assert store.dim == 1024 and store.attrs["encoder"] == "RN50" and store.attrs["crop"] == "center"
        assert store.attrs["source"] == "skyboxes" and store.attrs["channel_order"] == "rgb"
        stored = store[f"{SCAN}_vpb"]  # [36, 1024]
    # the stored vectors are the encoder's output on MatterSim-geometry renders of that viewpoint's skybox
    graph = load_graph(data_dir / "connectivity", SCAN)
    views = render_panorama(load_skybox(data_dir / "skyboxes", SCAN, "vpb"),
                            torch.from_numpy(graph.poses[graph.ix("vpb"), :3, :3].copy()))
    torch.manual_seed(0)
    encoder = load_encoder("RN50")
    np.testing.assert_allclose(stored[[0, 17, 35]], encoder.pooled(views[[0, 17, 35]]).numpy(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(stored[0], stored[17])
    with open_features(full_run.with_suffix(".tsv")) as tsv, open_features(full_run) as h5:
        for key in h5.keys():
            np.testing.assert_array_equal(tsv[key], h5[key])


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_file(full_run, data_dir, tmp_path):
    out = tmp_path / "killed.h5"
    args = ["--encoder", "RN50", "--data-dir", str(data_dir), "--out", str(out), "--batch-size", "12",
            "--device", "cpu", "--quiet"]
    # one thread, like the in-process runs (conftest), so float sums happen in the same order
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "features.extract", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out.with_name(out.name + ".journal")
    one_record = 36 * 1024 * 4
    deadline = time.monotonic() + 900  # a busy 2-core machine can take minutes to import and encode a batch
    while not (journal.exists() and journal.stat().st_size >= one_record) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the run finished before it could be killed; the test proves nothing"
    assert journal.stat().st_size >= one_record, "killed before its first record; the test proves nothing"
    stats = extract(ExtractConfig(encoder="RN50", data_dir=data_dir, out=out, batch_size=12, device="cpu", quiet=True))
    assert stats.skipped >= 1 and stats.skipped + stats.written == len(VIEWPOINTS)
    _same_file(out, full_run)


@pytest.mark.slow
def test_split_ranks_merge_into_the_same_file(full_run, data_dir, tmp_path):
    out = tmp_path / "split.h5"
    base = dict(encoder="RN50", data_dir=data_dir, out=out, batch_size=12, device="cpu", quiet=True, world_size=2)
    first = extract(ExtractConfig(rank=1, **base))
    assert first.keys == 1 and part_path(out, 1, 2).exists() and not out.exists()
    second = extract(ExtractConfig(rank=0, **base))  # rank 0 merges once every part is there
    assert second.keys == 1
    assert not part_path(out, 0, 2).exists() and not part_path(out, 1, 2).exists()
    _same_file(out, full_run)


@pytest.mark.slow
def test_real_rendered_views(shared_data, tmp_path):
    views_dir = shared_data / "mp3d_rendered_views" / "envdrop_semantic_views"
    out = tmp_path / "real.h5"
    assert main(["--encoder", "RN50", "--data-dir", str(shared_data), "--scans", "17DRP5sb8fy",
                 "--views-dir", str(views_dir), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    key = "17DRP5sb8fy_10c252c90fa24ef3b698c6f54d984c5c"
    with open_features(out) as store:
        assert store.keys() == [key] and store.attrs["source"] == "views"
        stored = store[key]
    folder = views_dir / "17DRP5sb8fy" / "10c252c90fa24ef3b698c6f54d984c5c_rgb"
    images = np.stack([np.asarray(Image.open(folder / f"{i}.jpg").convert("RGB")) for i in (3, 30)])
    torch.manual_seed(0)
    np.testing.assert_allclose(stored[[3, 30]], load_encoder("RN50").pooled(images).numpy(), rtol=1e-4, atol=1e-4)


def test_mattersim_source_takes_the_36_views_in_view_index_order(data_dir, full_run, tmp_path):
    """``--mattersim`` against a stand-in that renders like MatterSim (BGR buffers, state-driven camera)."""
    from tests import mattersim_standin

    standin = mattersim_standin.module()
    views = MatterSimViews(data_dir / "skyboxes", data_dir / "connectivity", standin)("synthScan", "vpb")
    graph_pose = torch.tensor(_pose(1.0, 0.4)).reshape(4, 4)[:3, :3]
    expected = render_panorama(load_skybox(data_dir / "skyboxes", SCAN, "vpb"), graph_pose)  # [36, 3, 480, 640] RGB
    assert views.shape == expected.shape and views.dtype == torch.uint8
    # headings reached by 30-degree turns differ from 2*pi*i/12 in the last bits: a grey level at most, rarely
    diff = (views.int() - expected.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3

    out = tmp_path / "mattersim.h5"
    config = ExtractConfig(encoder="RN50", data_dir=data_dir, out=out, device="cpu", quiet=True, mattersim=True,
                           mattersim_module=standin)
    extract(config)
    with open_features(out) as got, open_features(full_run) as ref:
        assert got.attrs["source"] == "mattersim" and sorted(got.keys()) == sorted(ref.keys())
        for key in ref.keys():
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-3, atol=1e-3)


def test_built_in_world_skyboxes_extract(tiny_world, tmp_path):
    """The world's skyboxes and poses through the same path (two viewpoints: RN50 on a CPU is slow)."""
    scan = read_scans_txt(tiny_world / "connectivity")[0]
    graph = load_graph(tiny_world / "connectivity", scan)
    chosen = list(graph.included_ids[:2])
    out = tmp_path / "world.h5"
    assert main(["--encoder", "RN50", "--data-dir", str(tiny_world), "--out", str(out), "--scans", scan,
                 "--viewpoints", *chosen, "--device", "cpu", "--quiet"]) == 0
    torch.manual_seed(0)
    encoder = load_encoder("RN50")
    with open_features(out) as store:
        assert sorted(store.keys()) == sorted(f"{scan}_{vp}" for vp in chosen)
        stored = store[f"{scan}_{chosen[1]}"]
    views = render_panorama(load_skybox(tiny_world / "skyboxes", scan, chosen[1]),
                            torch.from_numpy(graph.poses[graph.ix(chosen[1]), :3, :3].copy()))
    np.testing.assert_allclose(stored[[5, 30]], encoder.pooled(views[[5, 30]]).numpy(), rtol=1e-4, atol=1e-4)
    assert main(["--encoder", "RN50", "--data-dir", str(tiny_world), "--out", str(tmp_path / "x.h5"),
                 "--viewpoints", "nowhere", "--device", "cpu", "--quiet"]) == 2


def test_missing_mattersim_is_explained(data_dir, tmp_path, capsys):
    code = main(["--encoder", "RN50", "--data-dir", str(data_dir), "--out", str(tmp_path / "x.h5"), "--mattersim",
                 "--device", "cpu", "--quiet"])
    assert code == 2 and "compiled MatterSim module" in capsys.readouterr().err


def test_missing_sources_are_reported(tmp_path, data_dir, capsys):
    empty = tmp_path / "views"
    empty.mkdir()
    code = main(["--encoder", "RN50", "--data-dir", str(data_dir), "--views-dir", str(empty),
                 "--out", str(tmp_path / "x.h5"), "--device", "cpu", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no viewpoint has views" in err and str(empty) in err
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(ValueError, match="rank"):
        extract(ExtractConfig(encoder="RN50", data_dir=data_dir, out=tmp_path / "y.h5", rank=2, world_size=2))


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for option in ("--encoder", "--weights", "--data-dir", "--out", "--views-dir", "--batch-size", "--device",
                   "--crop", "--channel-order", "--tsv", "--dtype", "--rank", "--world-size", "--scans"):
        assert option in text
