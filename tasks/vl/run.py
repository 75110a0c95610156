"""The plumbing of a V&L training run, shared by ``tasks.vqa train`` and ``tasks.captioning train``.

A run folder holds ``config.json`` (the resolved config), ``checkpoint.pt`` (latest, for ``--resume``),
``best.pt`` (best validation score), ``scores.json`` (every evaluation), results files and TensorBoard logs
under ``tb/`` (scalars grouped ``losses/``, ``eval/``), as :mod:`agents.train` does. Checkpoints carry their
kind (``vqa-training-state`` and ``vqa-head``, ``captioning-training-state`` and ``captioner``), so a
checkpoint of another task is refused by name; ``--resume`` checks the checkpoint before it writes anything.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from envs.atomic import remove_leftovers, write_json
from envs.checkpoint import load_checkpoint, prepare_run_folder, save_checkpoint, set_rng_state
from envs.datadir import data_error

# The checkpoint kinds (envs.checkpoint.KINDS) of RUN/checkpoint.pt and RUN/best.pt, by task
RUN_KINDS = {"vqa": ("vqa-training-state", "vqa-head"), "captioning": ("captioning-training-state", "captioner"),
             "pretrain": ("tasks.pretrain/pretrain",) * 2,
             **{f"finetune-{t}": (f"tasks.pretrain/finetune-{t}",) * 2 for t in ("vqa", "snli-ve", "gqa")}}


@dataclass
class RunOptions:
    """Options every V&L training command has (its config dataclass derives from this one)."""

    eval_every: int = 250
    """iterations between validation runs and checkpoints"""
    out: Path | None = None
    """run folder (default runs/{task}-{name}-{time})"""
    resume: bool = False
    """continue the run in --out from its checkpoint.pt"""
    seed: int = 0
    """seed of initialisation, batch order and sampling"""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """torch device"""
    threads: int = 0
    """torch CPU threads (0: torch's default)"""
    quiet: bool = False
    """hide the progress bar"""


def default_run_folder(task: str, name: str) -> Path:
    """``runs/{task}-{name}-{YYYYmmdd-HHMMSS}``."""
    return Path("runs") / f"{task}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


class Run:
    """One training run's folder, TensorBoard writer, checkpoints and score history.

    With ``resume``, ``RUN/checkpoint.pt`` is loaded and checked (a checkpoint of this task) before anything is
    written, so a resume that fails leaves the folder as it was; a run killed before its first checkpoint has
    none, and starts again from the beginning.
    """

    def __init__(self, out: Path, config: object, resume: bool, extra: dict | None = None,
                 task: str = "vqa") -> None:
        self.kind, self.model_kind = RUN_KINDS[task]
        self.out = prepare_run_folder(out, resume)
        self.saved = None
        if resume and (self.out / "checkpoint.pt").exists():
            self.saved = load_checkpoint(self.out / "checkpoint.pt", kind=self.kind)
        if not resume:
            values = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
            write_json(self.out / "config.json", values | (extra or {}), indent=2)
        self._writer = None
        self.history: list[dict] = []
        self.best: dict = {}

    @property
    def writer(self):
        """TensorBoard's writer (under ``RUN/tb``), opened on first use: a run that fails to start writes none."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out / "tb"))
        return self._writer

    def scalars(self, group: str, values: dict[str, float], step: int) -> None:
        """Log ``values`` under ``group/`` at ``step``."""
        for key, value in values.items():
            self.writer.add_scalar(f"{group}/{key}", value, step)

    def record(self, record: dict, key: float, state: dict) -> bool:
        """Add an evaluation to ``scores.json``; save ``best.pt`` (``state``) when ``key`` beats the best so far.
        Returns whether it did."""
        self.history.append(record)
        better = key > self.best.get("key", -float("inf"))
        if better:
            self.best = {"key": key, **record}
            save_checkpoint(self.out / "best.pt", state, self.model_kind)
        write_json(self.out / "scores.json", {"best": self.best, "history": self.history}, indent=2)
        self.writer.flush()
        return better

    def save(self, state: dict) -> None:
        """The latest state, with the history and the best so far, for ``--resume``."""
        save_checkpoint(self.out / "checkpoint.pt", state | {"history": self.history, "best": self.best}, self.kind)

    def restore(self) -> dict | None:
        """The state resumed from (its RNG states restored), or None when there is none (not resuming, or a run
        killed before its first checkpoint)."""
        if self.saved is None:
            return None
        state = self.saved
        with self.fitting():
            self.history, self.best = state["history"], state["best"]
            if "rng" in state:
                set_rng_state(state["rng"])
        remove_leftovers(self.out)  # temporary files of writes a kill interrupted (this run is their only writer)
        remove_leftovers(self.out / "results")
        return state

    @contextmanager
    def fitting(self) -> Iterator[None]:
        """Around loading the saved state into the run's model and optimiser: a state that does not fit (other
        sizes or options) is one :class:`~envs.datadir.DataError`, not a torch traceback."""
        try:
            yield
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise data_error(self.out / "checkpoint.pt", f"does not fit this run ({type(err).__name__}: {first})",
                             "Resume with the options the run was started with (see its config.json), or start "
                             "a new run") from None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler, parameters, max_norm: float,
                   reduce: Callable[[], None] | None = None) -> None:
    """One update: gradients of ``loss`` (then ``reduce()``: under torchrun, the average across processes), their
    norm clipped to ``max_norm``, the optimiser's and the learning-rate scheduler's step."""
    optimizer.zero_grad()
    loss.backward()
    if reduce is not None:
        reduce()
    torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()
    scheduler.step()


def epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of an epoch, a pure function of (seed, epoch): a resumed run replays it."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def batch_indices(size: int, batch: int, seed: int, iteration: int) -> torch.Tensor:
    """The training examples of ``iteration``: consecutive batches of per-epoch shuffles (the last batch of an
    epoch may be short)."""
    per_epoch = -(-size // batch)
    epoch, k = divmod(iteration, per_epoch)
    return epoch_order(size, seed, epoch)[k * batch : (k + 1) * batch]


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
