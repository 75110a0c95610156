"""Shared fixtures. Tests that need the real public data skip cleanly without it (CI has it)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may wait on a network

import pytest

from envs.datadir import shared_data_dir


@pytest.fixture(scope="session")
def shared_data():
    """Path to ``../shared/data`` (or ``$CLIPVIL_SHARED_DATA``); skips the test when it is absent."""
    path = shared_data_dir()
    if not (path / "connectivity" / "scans.txt").exists():
        pytest.skip(f"real data not found at {path} (set CLIPVIL_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small built-in world (a data directory in the real formats), built once per test session."""
    from envs.world import WorldConfig, build_world

    out = tmp_path_factory.mktemp("world") / "tiny"
    build_world(out, WorldConfig(houses_seen=3, houses_unseen=2, houses_test=1, paths_per_house=24,
                                 eval_paths_per_house=10, image_size=32, workers=1))
    return out


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tests run small models: one thread avoids torch's workers spinning against each other on 2 cores."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_vl_world(tmp_path_factory):
    """A small world whose V&L data has 24 images, with their RN50 (random init, seed 0) grid features at
    ``vl/grid-rn50.h5``, where the V&L commands look for them."""
    import torch

    from envs.world import WorldConfig, build_world
    from envs.world.vl import VLConfig
    from features.encoders import load_encoder
    from features.grid import extract_grid, list_images

    out = tmp_path_factory.mktemp("vl") / "world"
    build_world(out, WorldConfig(houses_seen=2, houses_unseen=1, houses_test=1, paths_per_house=8,
                                 eval_paths_per_house=4, image_size=32, workers=1, feature_dim=64),
                vl=VLConfig(vl_max_images=24))
    torch.manual_seed(0)
    extract_grid(load_encoder("RN50"), list_images(out / "vl" / "images"), out / "vl" / "grid-rn50.h5",
                 {"encoder": "RN50"}, quiet=True)
    return out
