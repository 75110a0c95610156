"""Atomic, resumable checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts: model and optimiser state dicts,
the iteration, the best score so far, and every random generator's state (torch, numpy, Python), so a run
resumed after a kill continues exactly where it was. Files are written to a temporary name in the same
folder and renamed (:mod:`envs.atomic`), so a kill never leaves a half-written checkpoint.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from envs.atomic import atomic_open
from envs.datadir import DataError


def save_checkpoint(path: Path, state: dict) -> None:
    """Save ``state`` (plus the RNG states) atomically."""
    state = dict(state)
    state["rng"] = rng_state()
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def prepare_run_folder(out: Path, resume: bool, resumable: str = "checkpoint.pt") -> Path:
    """A training run's folder: new (refusing to overwrite another run's ``config.json``) or, with ``resume``,
    the existing one, which must hold ``resumable`` (a folder of runs, such as RxR's per-language models, resumes
    from its ``config.json``). Every training command goes through here."""
    out = Path(out)
    if resume:
        if not (out / resumable).exists():
            raise DataError(f"{out}: nothing to resume (no {resumable}); start without --resume")
        return out
    if (out / "config.json").exists():
        raise DataError(f"{out}: a run already lives here; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", restore_rng: bool = False) -> dict:
    """Load a checkpoint safely (``weights_only=True``); optionally restore the RNG states it saved."""
    state = torch.load(path, map_location=map_location, weights_only=True)
    if restore_rng and "rng" in state:
        set_rng_state(state["rng"])
    return state


def rng_state() -> dict:
    """Every generator's state as weights-only-loadable values."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": _to_lists(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    random.setstate(_to_tuples(state["python"]))


def _to_lists(obj):
    return [_to_lists(x) for x in obj] if isinstance(obj, tuple) else obj


def _to_tuples(obj):
    return tuple(_to_tuples(x) for x in obj) if isinstance(obj, list) else obj
