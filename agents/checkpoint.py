"""Atomic, resumable checkpoints that load with ``torch.load(weights_only=True)``, checked for what they are.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts: model and optimiser state dicts,
the iteration, the best score so far, and every random generator's state (torch, numpy, Python), so a run
resumed after a kill continues exactly where it was. Files are written to a temporary name in the same
folder and renamed (:mod:`envs.atomic`), so a kill never leaves a half-written checkpoint.

Each file says what it is: ``format`` (this toolkit's) and ``kind``: ``training-state`` (``RUN/checkpoint.pt``,
what ``--resume`` reads), ``follower`` or ``speaker`` (``RUN/{follower,speaker}_best.pt``: a model with its
config, task and vocabulary). Loading checks both, so a file of another program, a truncated file or a
checkpoint of the wrong kind is one clear :class:`~envs.datadir.DataError` (files written before the tag
existed are recognised by their keys). Nothing here ever turns the weights-only check off.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import torch

from envs.atomic import atomic_open
from envs.datadir import data_error
from envs.validate import torch_load

FORMAT = "clipvil-nav"
KINDS = {
    "training-state": "the training state of a run (RUN/checkpoint.pt, what --resume reads)",
    "follower": "a follower (RUN/follower_best.pt)",
    "speaker": "a speaker (RUN/speaker_best.pt)",
}
FIX = ("Pass a checkpoint written by python -m agents.train: RUN/checkpoint.pt (--resume), RUN/follower_best.pt "
       "(--follower-checkpoint, agents.evaluate) or RUN/speaker_best.pt (--speaker-checkpoint)")
TRAINING_KEYS = ("stage_index", "iteration", "step", "best", "history", "envs", "follower", "speaker",
                 "follower_opt", "speaker_opt")
MODEL_KEYS = ("model", "config")


def save_checkpoint(path: Path, state: dict, kind: str) -> None:
    """Save ``state`` as a checkpoint of ``kind`` (plus the RNG states) atomically."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {', '.join(KINDS)}, got {kind!r}")
    state = {"format": FORMAT, "kind": kind, **state, "rng": rng_state()}
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def checkpoint_kind(state: object) -> str | None:
    """The kind of a loaded checkpoint: its tag, or for an untagged (older) file what its keys show; None when
    it is not a checkpoint of this toolkit."""
    if not isinstance(state, dict):
        return None
    if state.get("format") == FORMAT:
        return state.get("kind") if state.get("kind") in KINDS else None
    if "format" in state or "kind" in state:
        return None
    if all(key in state for key in TRAINING_KEYS):
        return "training-state"
    if isinstance(state.get("model"), dict) and isinstance(state.get("config"), dict):
        return "follower" if "action_dim" in state["config"] else "speaker"
    return None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", restore_rng: bool = False,
                    kind: str | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``), check that it is this toolkit's (of ``kind``, when
    given) and optionally restore the RNG states it saved."""
    path = Path(path)
    state = torch_load(path, "checkpoint", FIX, map_location)
    found = checkpoint_kind(state)
    if found is None:
        bare = isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())
        what = "a bare state dict of tensors" if bare else f"a {type(state).__name__} of other keys"
        raise data_error(path, f"is not a checkpoint of this toolkit ({what}, without its model config)", FIX)
    if kind is not None and found != kind:
        raise data_error(path, f"is {KINDS[found]}, not {KINDS[kind]}", FIX)
    needed = TRAINING_KEYS if found == "training-state" else MODEL_KEYS
    missing = [key for key in needed if key not in state]
    if missing:
        raise data_error(path, f"is {KINDS[found]} without {', '.join(missing)} (an incomplete file)", FIX)
    if restore_rng and "rng" in state:
        try:
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise data_error(path, f"holds random generator states that cannot be restored ({err})", FIX) from None
    return state


def load_model(model: torch.nn.Module, state: dict, path: Path, vocab: list[str] | None = None) -> None:
    """Load a follower or speaker checkpoint's weights into ``model`` after checking that they fit: the same
    sizes (vocabulary, feature dimension, layers) and, when ``vocab`` is given, the same words in order."""
    theirs, ours = state["config"], dataclasses.asdict(model.cfg)  # type: ignore[arg-type]
    differ = [name for name in ("vocab_size", "feature_dim", "angle_dim", "word_dim", "hidden_dim", "action_dim")
              if name in ours and theirs.get(name) != ours[name]]
    if differ:
        sizes = ", ".join(f"{name} {theirs.get(name)} (here {ours[name]})" for name in differ)
        raise data_error(path, f"was trained with {sizes}", "Use a checkpoint trained on the same data directory, "
                         "task, languages and features as this run")
    words = state.get("vocab")
    if vocab is not None and words is not None and list(words) != list(vocab):
        raise data_error(path, "was trained with a different vocabulary (the same size, other words)",
                         "Use a checkpoint trained on the same data directory, task and languages as this run")
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise data_error(path, f"holds weights that do not fit this model ({first})", FIX) from None


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
