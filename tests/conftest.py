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
