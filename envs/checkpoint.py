"""Atomic, resumable checkpoints that load with ``torch.load(weights_only=True)``, checked for what they are.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts: model and optimiser state dicts,
the iteration, the best score so far, and every random generator's state (torch, numpy, Python), so a run
resumed after a kill continues exactly where it was. Files are written to a temporary name in the same
folder and renamed (:mod:`envs.atomic`), so a kill never leaves a half-written checkpoint.

Each file says what it is: ``format`` (this toolkit's) and ``kind`` (:data:`KINDS`): the training state of a
navigation, VQA or captioning run (``RUN/checkpoint.pt``, what ``--resume`` reads), or a model with its config
and vocabulary (a follower or speaker of ``agents.train``, a VQA head or a captioner of the V&L commands).
Loading checks both, so a file of another program, a truncated file or a checkpoint of another task or kind
is one clear :class:`~envs.datadir.DataError` naming what it is and what to pass instead (files written before
the tag existed are recognised by their keys). Nothing here ever turns the weights-only check off.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envs.atomic import atomic_open
from envs.datadir import DataError, data_error
from envs.validate import torch_load

FORMAT = "clipvil-nav"
NAV_FIX = ("Pass a checkpoint written by python -m agents.train: RUN/checkpoint.pt (--resume), RUN/follower_best.pt "
           "(--follower-checkpoint, agents.evaluate) or RUN/speaker_best.pt (--speaker-checkpoint)")
VQA_FIX = ("Pass a checkpoint written by python -m tasks.vqa train: RUN/best.pt (tasks.vqa eval --checkpoint) or "
           "RUN/checkpoint.pt (--resume)")
CAPTION_FIX = ("Pass a checkpoint written by python -m tasks.captioning train: RUN/best.pt (tasks.captioning eval "
               "--checkpoint) or RUN/checkpoint.pt (--resume)")
PRETRAIN_FIX = ("Pass a checkpoint written by python -m tasks.pretrain: RUN/best.pt or RUN/checkpoint.pt of its "
                "pretrain command (finetune --pretrained, pretrain --resume), or of finetune --task T (its --resume)")
FIX = NAV_FIX  # what a file that is no checkpoint of this toolkit is told when no kind was asked for


@dataclass(frozen=True)
class Kind:
    """What one kind of checkpoint is (in messages), the keys it must hold and what to pass instead of it."""

    described: str
    keys: tuple[str, ...]
    fix: str


NAV_TRAINING_KEYS = ("stage_index", "iteration", "step", "best", "history", "envs", "follower", "speaker",
                     "follower_opt", "speaker_opt")
TRAINING_KEYS = NAV_TRAINING_KEYS  # the name agents.train's checks use
VL_RESUME_KEYS = ("optimizer", "scheduler", "iteration", "history", "best")
VQA_KEYS = ("model", "head", "vocab", "answers")
CAPTIONER_KEYS = ("model", "captioner", "vocab")
KINDS = {
    "training-state": Kind("the training state of a navigation run (RUN/checkpoint.pt of agents.train, what its "
                           "--resume reads)", NAV_TRAINING_KEYS, NAV_FIX),
    "follower": Kind("a follower (RUN/follower_best.pt of agents.train)", ("model", "config"), NAV_FIX),
    "speaker": Kind("a speaker (RUN/speaker_best.pt of agents.train)", ("model", "config"), NAV_FIX),
    "vqa-training-state": Kind("the training state of a VQA run (RUN/checkpoint.pt of tasks.vqa train)",
                               VQA_KEYS + VL_RESUME_KEYS, VQA_FIX),
    "vqa-head": Kind("a VQA head (RUN/best.pt of tasks.vqa train)", VQA_KEYS, VQA_FIX),
    "captioning-training-state": Kind("the training state of a captioning run (RUN/checkpoint.pt of "
                                      "tasks.captioning train)", CAPTIONER_KEYS + VL_RESUME_KEYS, CAPTION_FIX),
    "captioner": Kind("a captioner (RUN/best.pt of tasks.captioning train)", CAPTIONER_KEYS, CAPTION_FIX),
    # tasks.pretrain: one kind for a run's best.pt and checkpoint.pt (both are what the next step reads)
    "tasks.pretrain/pretrain": Kind("a V&L pretraining checkpoint (RUN/best.pt or RUN/checkpoint.pt of "
                                    "tasks.pretrain pretrain)", ("model", "model_config"), PRETRAIN_FIX),
    **{f"tasks.pretrain/finetune-{task}": Kind(f"a model fine-tuned on {task} (RUN/best.pt or RUN/checkpoint.pt of "
                                                f"tasks.pretrain finetune --task {task})", ("model", "model_config"),
                                                PRETRAIN_FIX)
       for task in ("vqa", "snli-ve", "gqa")},
}


def save_checkpoint(path: Path, state: dict, kind: str) -> None:
    """Save ``state`` as a checkpoint of ``kind`` (plus the RNG states) atomically."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {', '.join(KINDS)}, got {kind!r}")
    state = {"format": FORMAT, "kind": kind, **state, "rng": rng_state()}
    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def prepare_run_folder(out: Path, resume: bool, resumable: str = "checkpoint.pt") -> Path:
    """A training run's folder: new (refusing to overwrite another run's ``config.json``) or, with ``resume``,
    the existing one, which must hold ``resumable`` or, for a run killed before its first checkpoint, its
    ``config.json`` (then the run starts again from the beginning: nothing was saved to continue from). A
    folder of runs, such as RxR's per-language models, resumes from its ``config.json``. Nothing is written
    here: a resume that fails later leaves the folder as it was. Every training command goes through here."""
    out = Path(out)
    if resume:
        if not (out / resumable).exists() and not (out / "config.json").exists():
            raise DataError(f"{out}: nothing to resume (no {resumable} or config.json); start without --resume")
        return out
    if (out / "config.json").exists():
        raise DataError(f"{out}: a run already lives here; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def checkpoint_kind(state: object) -> str | None:
    """The kind of a loaded checkpoint: its tag, or for an untagged (older) file what its keys show; None when
    it is not a checkpoint of this toolkit."""
    if not isinstance(state, dict):
        return None
    if state.get("format") == FORMAT:
        return state.get("kind") if state.get("kind") in KINDS else None
    if "format" in state or "kind" in state:
        return None
    if all(key in state for key in NAV_TRAINING_KEYS):
        return "training-state"
    if isinstance(state.get("model"), dict) and isinstance(state.get("config"), dict):
        return "follower" if "action_dim" in state["config"] else "speaker"
    resumable = "optimizer" in state
    if isinstance(state.get("model"), dict) and isinstance(state.get("head"), dict):
        return "vqa-training-state" if resumable else "vqa-head"
    if isinstance(state.get("model"), dict) and isinstance(state.get("captioner"), dict):
        return "captioning-training-state" if resumable else "captioner"
    return None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", restore_rng: bool = False,
                    kind: str | tuple[str, ...] | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``), check that it is this toolkit's (of ``kind``, or one of
    the kinds, when given) and optionally restore the RNG states it saved."""
    path = Path(path)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind or ())
    fix = KINDS[kinds[0]].fix if kinds else FIX
    state = torch_load(path, "checkpoint", fix, map_location)
    found = checkpoint_kind(state)
    if found is None:
        bare = isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())
        what = "a bare state dict of tensors" if bare else f"a {type(state).__name__} of other keys"
        raise data_error(path, f"is not a checkpoint of this toolkit ({what}, without its model config)", fix)
    if kinds and found not in kinds:
        raise data_error(path, f"is {KINDS[found].described}, not {KINDS[kinds[0]].described}", fix)
    missing = [key for key in KINDS[found].keys if key not in state]
    if missing:
        raise data_error(path, f"is {KINDS[found].described} without {', '.join(missing)} (an incomplete file)",
                         KINDS[found].fix)
    if restore_rng and "rng" in state:
        try:
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise data_error(path, f"holds random generator states that cannot be restored ({err})", fix) from None
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
        raise data_error(path, f"holds weights that do not fit this model ({first})", NAV_FIX) from None


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
