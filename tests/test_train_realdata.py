"""The main job on real data: real graphs and R2R splits with zero features, and 3 real scans with real features."""

from __future__ import annotations

import json
import shutil

import pytest

from agents import train
from envs.gym.vector_env import VLNVectorEnv

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _three_scan_data_dir(shared_data, root):
    """A data directory of the 3 scans that have real features: VALAN's 12 real R2R paths as every split."""
    (root / "R2R").mkdir(parents=True)
    (root / "features").mkdir()
    (root / "connectivity").symlink_to(shared_data / "connectivity")
    paths = shared_data / "valan_testdata" / "R2R_3scans.json"
    for split in ("train", "val_seen", "val_unseen"):
        shutil.copy(paths, root / "R2R" / f"R2R_{split}.json")
    tsv = shared_data / "image_features_sample" / "valan_efficientnet_b4_3scans_36views.tsv"
    (root / "features" / "efficientnet-b4.tsv").symlink_to(tsv)
    return root


def test_three_real_scans_with_real_features_end_to_end(shared_data, tmp_path):
    data = _three_scan_data_dir(shared_data, tmp_path / "data")
    env = VLNVectorEnv(data, "val_unseen", num_envs=4)
    assert env.feature_dim == 1792
    obs, _ = env.reset()
    assert obs["view_features"][..., :1792].any()  # real features flow into the observations
    out = tmp_path / "run"
    code = train.main(["r2r", "--backtranslate", "--data-dir", str(data), "--out", str(out), "--speaker-iters", "2",
                       "--iters", "2", "--bt-iters", "2", "--eval-every", "2", "--batch-size", "8",
                       "--aug-paths-per-scan", "4", "--quiet"])
    assert code == 0
    scores = json.loads((out / "scores.json").read_text())
    assert [h["stage"] for h in scores["history"]] == ["speaker", "follower", "backtranslate"]
    assert len(json.loads((out / "results" / "val_unseen.json").read_text())) == 36


def test_real_graphs_and_splits_with_zero_features(shared_data, tmp_path):
    out = tmp_path / "run"
    code = train.main(["r2r", "--data-dir", str(shared_data), "--features", "none", "--out", str(out),
                       "--only", "follower", "--iters", "1", "--eval-every", "1", "--batch-size", "8", "--quiet"])
    assert code == 0
    best = json.loads((out / "scores.json").read_text())["best"]["follower"]["scores"]
    # the official R2R scorer counts instructions _0.._2 only: val_seen has one path with a 4th
    assert best["val_unseen/count"] == 2349 and best["val_seen/count"] == 1020
    assert 0.0 <= best["val_unseen/success"] <= 1.0
    assert len(json.loads((out / "results" / "test.json").read_text())) == 4173
