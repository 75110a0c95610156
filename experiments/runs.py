"""What the experiment scripts share: train one run folder through ``python -m agents.train``, resumably."""

from __future__ import annotations

import shutil
from pathlib import Path

from agents import train


def train_run(out: Path, argv: list[str], resume_from: str = "checkpoint.pt") -> Path:
    """Train ``agents.train`` with ``argv`` (without ``--out``/``--resume``) in ``out``; rerunning after a kill
    resumes it (a folder of per-language runs resumes from its ``config.json``: pass that as ``resume_from``),
    and a finished one (marked ``done``) is kept as it is."""
    if (out / "done").exists():
        return out
    resume = (out / resume_from).exists()
    if not resume and out.exists():
        shutil.rmtree(out)  # killed before its first checkpoint: start it again
    full = [*argv, "--out", str(out), *(["--resume"] if resume else [])]
    if train.main(full) != 0:
        raise SystemExit(f"training failed: python -m agents.train {' '.join(full)}")
    (out / "done").touch()
    return out
