"""The layout holds: the layering contracts in pyproject.toml are kept and every module imports on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "envs", "eval", "features", "tasks")

# Imports every module of the packages named in argv, unloading all of those packages' modules before each
# import (third-party libraries stay loaded, so a walk over the whole project takes seconds, not minutes).
WALK = """
import importlib, pkgutil, sys, traceback
packages = tuple(sys.argv[1:])
names = []
for package in packages:
    names.append(package)
    names += [info.name for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")]
failures = []
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failures.append(name + ":\\n" + traceback.format_exc(limit=4))
print(len(names), "modules")
sys.exit("\\n".join(failures) if failures else 0)
"""


def import_walk(cwd: Path, packages: tuple[str, ...]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WALK, *packages], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_import_linter_contracts_are_kept():
    """``lint-imports`` (contracts: layers, a pure kernel and metrics, no cycles) passes on the tree."""
    pytest.importorskip("importlinter")
    result = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                             "sys.exit(lint_imports())"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "7 kept, 0 broken" in result.stdout


def test_every_module_imports_alone():
    """Each module imports in an interpreter where no other module of the project is loaded yet, so a module
    that works only when something else was imported first (an import cycle, a missing import) fails here."""
    result = import_walk(ROOT, PACKAGES)
    assert result.returncode == 0, result.stderr[-5000:]
    assert int(result.stdout.split()[0]) > 50  # the walk found the whole tree


def test_the_walk_catches_an_order_dependent_cycle(tmp_path):
    """The walk is not vacuous: ``b`` imports fine (it completes ``a`` first), ``a`` alone does not, though in
    a process that had imported ``b`` already ``a`` would seem to work."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("import cyclic.b\nA = 1\n")
    (package / "b.py").write_text("from cyclic.a import A\nB = A\n")
    result = import_walk(tmp_path, ("cyclic",))
    assert result.returncode != 0 and "cyclic.a:" in result.stderr and "cyclic.b:" not in result.stderr
