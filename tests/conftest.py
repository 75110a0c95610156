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
