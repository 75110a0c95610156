"""The V&L heads learn from RN50 grid features (random init) of the built-in world's views: both VQA heads score
well above the question-only and majority-answer baselines, and the captioner above the
nearest-neighbour caption baseline.

Opt-in (``python -m pytest -m vl_learning``): learning needs a few hundred images, whose RN50 grids alone take
minutes on a CPU (about 0.4 s an image), and 2048-channel grids make every step cost; the whole file runs well
over the minute a default test may take. On 120 training images neither head learnt the room type in 150
iterations (the full-size runs in the issue note did).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from envs.world import WorldConfig, build_world
from envs.world.vl import VLConfig
from features.encoders import load_encoder
from features.grid import extract_grid, list_images
from tasks.captioning.__main__ import main as caption_main
from tasks.vqa.__main__ import main as vqa_main

pytestmark = [pytest.mark.slow, pytest.mark.vl_learning]

IMAGES = 540  # 60 per house: 360 training images (6 houses), 120 validation images (2 unseen houses)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("learn") / "world"
    build_world(out, WorldConfig(houses_seen=6, houses_unseen=2, houses_test=1, paths_per_house=4,
                                 eval_paths_per_house=2, image_size=32, workers=1, feature_dim=64),
                vl=VLConfig(vl_max_images=IMAGES))
    torch.manual_seed(0)
    extract_grid(load_encoder("RN50"), list_images(out / "vl" / "images"), out / "vl" / "grid-rn50.h5",
                 {"encoder": "RN50"}, batch_size=35, quiet=True)
    return out


def _vqa(world: Path, out: Path, head: str) -> dict:
    assert vqa_main(["train", "--data-dir", str(world), "--head", head, "--hidden", "256", "--joint-dim", "256",
                     "--layers", "1", "--iters", "400", "--eval-every", "100", "--lr", "1e-3", "--out", str(out),
                     "--quiet"]) == 0
    return json.loads((out / "scores.json").read_text())


@pytest.fixture(scope="module")
def question_only(world, tmp_path_factory) -> dict:
    return _vqa(world, tmp_path_factory.mktemp("qonly"), "question-only")


@pytest.mark.parametrize("head", ["pythia", "mcan"])
def test_vqa_heads_beat_the_question_only_and_majority_baselines(world, question_only, tmp_path, head):
    sighted = _vqa(world, tmp_path / "sighted", head)
    best, prior, majority = sighted["best"]["val"], question_only["best"]["val"], sighted["majority_baseline"]
    print(f"{head}: {best}\nquestion-only: {prior}\nmajority: {majority}")
    assert best["overall"] >= prior["overall"] + 8 and best["overall"] >= majority["overall"] + 20
    assert best["perAnswerType"]["other"] >= prior["perAnswerType"]["other"] + 15
    assert best["perQuestionType"]["what room is"] >= prior["perQuestionType"]["what room is"] + 25


def test_captioner_beats_the_nearest_neighbour_baseline(world, tmp_path):
    out = tmp_path / "caption"
    assert caption_main(["train", "--data-dir", str(world), "--layers", "1", "--d", "256", "--iters", "400",
                         "--eval-every", "200", "--lr", "5e-4", "--min-count", "1", "--beam", "3", "--out", str(out),
                         "--quiet"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    best, nn = scores["best"]["val"], scores["nearest_neighbour"]
    print(f"captioner: {best}\nnearest neighbour: {nn}")
    assert best["CIDEr-D"] >= nn["CIDEr-D"] + 0.1 and best["BLEU-4"] >= nn["BLEU-4"]
