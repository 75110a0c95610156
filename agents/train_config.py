"""The configuration of ``python -m agents.train``: one dataclass, each field's docstring is its ``--help``."""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envs import MAX_EPISODE_STEPS
from envs.cli import config_from_args, config_parser
from envs.datadir import DataError

# Budgets: the paper's for real data (EnvDrop / CLIP-ViL run scripts), a 15-minute CPU run for the built-in world.
# The world's learning rate is 5x EnvDrop's: at 1e-4 its 400 follower iterations (EnvDrop runs 80k) end before
# the follower has learnt to ground landmark words in the views (val_unseen SR 27% against 21% blind); at 5e-4
# it does (44% against 21%), and 1e-3 diverges. Back-translation starts fresh RMSprop optimisers (as EnvDrop's
# run does), whose first steps are large; at 5e-4 that undid stage 2 (SR 44% -> 34%), at 1e-4 it does not.
PAPER_BUDGET = {"speaker_iters": 80_000, "iters": 80_000, "bt_iters": 100_000, "eval_every": 2_000, "lr": 1e-4}
WORLD_BUDGET = {"speaker_iters": 150, "iters": 400, "bt_iters": 50, "eval_every": 100, "lr": 5e-4}


@dataclass
class TrainConfig:
    """Options of ``python -m agents.train``."""

    task: Literal["r2r", "rxr"] = "r2r"
    """task to train"""
    data_dir: str | None = None
    """data directory (connectivity/, R2R/, RxR/, features/); default: the built-in world"""
    features: str | None = None
    """feature file name or path inside DATA/features, or 'none' for zero features (blind agent); default: the
    built-in world's, or the data directory's only feature file"""
    feature_dtype: Literal["float32", "float16"] = "float32"
    """how the feature table is held in memory: float16 halves it (0.79 -> 0.40 GB for real R2R's train and
    validation houses at 640-d), rounding float32 files' features to 3 significant digits (a float16 file loses
    nothing); the models still compute in float32"""
    backtranslate: bool = False
    """after the follower, fine-tune it with back-translation (speaker-written instructions on new paths)"""
    only: Literal["speaker", "follower"] | None = None
    """train only the speaker or only the follower (stage 1, no back-translation)"""
    speaker_checkpoint: str | None = None
    """a trained speaker (speaker_best.pt) for back-translation; without it the speaker is trained first"""
    follower_checkpoint: str | None = None
    """a trained follower to start from: back-translation starts from it (skipping stage 1); without
    --backtranslate, stage 1 continues training its weights (fresh optimisers at --lr)"""
    iters: int | None = None
    """follower stage-1 iterations"""
    speaker_iters: int | None = None
    """speaker iterations"""
    bt_iters: int | None = None
    """back-translation updates, each a real and an augmented pass"""
    eval_every: int | None = None
    """iterations between validation runs and checkpoints"""
    batch_size: int = 64
    """episodes per rollout"""
    eval_batch_size: int = 64
    """episodes per rollout when evaluating (greedy decoding; larger is faster)"""
    max_steps: int = MAX_EPISODE_STEPS
    """actions per episode before it is cut off"""
    il_weight: float | None = None
    """weight of the teacher-forced (imitation) loss"""
    aug_il_weight: float = 0.6
    """imitation weight on the augmented pass of back-translation"""
    lr: float | None = None
    """learning rate of the speaker (Adam) and the follower (RMSprop)"""
    bt_lr: float = 1e-4
    """learning rate of back-translation's fresh follower optimisers (EnvDrop's 1e-4, on the world too)"""
    dropout: float = 0.5
    """the follower's dropout (EnvDrop's 0.5)"""
    speaker_dropout: float = 0.6
    """the speaker's dropout (EnvDrop's 0.6)"""
    feature_dropout: float = 0.3
    """element-wise dropout of the image features (EnvDrop's 0.3)"""
    env_dropout: float = 0.4
    """environmental dropout: probability of dropping a feature channel on the augmented pass"""
    env_dropout_per_env: bool = False
    """one environmental-dropout mask per environment (the paper) instead of per batch (EnvDrop's code)"""
    aug_paths_per_scan: int | None = 200
    """sampled augmentation paths per training scan"""
    aug_source: Literal["sampled", "train-speaker", "train-human"] = "sampled"
    """what back-translation's augmented pass plays: sampled paths with the speaker's instructions (EnvDrop);
    or, to tell what hurts or helps, the training paths with the speaker's instructions (train-speaker) or with
    their human ones (train-human: the extra pass and its environmental dropout without the speaker)"""
    select_by: Literal["success", "spl", "ndtw"] | None = None
    """val_unseen metric that picks the best follower (RxR: its average over the languages)"""
    languages: str | None = None
    """RxR language groups, comma-separated (en = en-IN + en-US, hi, te): one model each, as CLIP-ViL, unless
    --joint"""
    joint: bool = False
    """RxR: one model for all --languages, with a multilingual vocabulary saved with its checkpoints"""
    teacher: Literal["shortest", "path"] | None = None
    """imitation teacher: the next step on the shortest path to the goal (EnvDrop, CLIP-ViL) or along the
    reference path"""
    reward: Literal["goal", "ndtw"] | None = None
    """A2C reward: EnvDrop's distance-to-goal reward, or fidelity (the gain in nDTW per step + a success bonus)"""
    out: str | None = None
    """output folder (config, checkpoints, TensorBoard logs, results); default runs/{task}-{time}"""
    details: bool = False
    """with each results file, write results/{split}.details.json: per decision the attention over the
    instruction and every action's probability (what python -m eval.replay shows)"""
    resume: bool = False
    """continue the run in --out from its last checkpoint"""
    seed: int = 0
    """seed of everything (episode order, dropout, sampling)"""
    device: str = "cpu"
    """torch device: cpu, cuda, cuda:1, ..."""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)"""
    quiet: bool = False
    """no progress bars"""

    def resolved(self) -> TrainConfig:
        """A copy with budgets and weights filled in (paper budgets for real data, short ones for the world)."""
        budget = PAPER_BUDGET if self.data_dir else WORLD_BUDGET
        values = {k: v if getattr(self, k) is None else getattr(self, k) for k, v in budget.items()}
        il = self.il_weight if self.il_weight is not None else IL_WEIGHT[self.task]
        defaults = TASK_DEFAULTS[self.task]
        chosen = {k: getattr(self, k) if getattr(self, k) is not None else v for k, v in defaults.items()}
        return dataclasses.replace(self, il_weight=il, **chosen, **values)

    def language_list(self) -> list[str]:
        """The RxR language groups of ``--languages``, checked (a clear error names an unknown one)."""
        groups = [g.strip() for g in (self.languages or "").split(",") if g.strip()]
        unknown = [g for g in groups if g not in RXR_GROUPS]
        if unknown:
            raise DataError(f"--languages {self.languages}: unknown language group(s) {', '.join(unknown)}; "
                            f"choose among {', '.join(RXR_GROUPS)} (en = en-IN + en-US)")
        if self.task == "r2r" and groups:
            raise DataError("--languages is for RxR; R2R is English only")
        if self.task == "rxr" and not groups:
            raise DataError("--languages selects no language; give one or more of en, hi, te")
        return list(dict.fromkeys(groups))


IL_WEIGHT = {"r2r": 0.2, "rxr": 0.4}  # EnvDrop's run script; CLIP-ViL's RxR setting
RXR_GROUPS = ("en", "hi", "te")
# Per task, what unset options become. R2R: EnvDrop's recipe. RxR: all three languages, one model each
# (CLIP-ViL), selected by nDTW (RxR's main metric); teacher and reward: CLIP-ViL's, which gave the better nDTW in
# the short comparison of experiments/rxr_recipes.py on the built-in world (issue #12).
TASK_DEFAULTS = {
    "r2r": {"languages": None, "select_by": "success", "teacher": "shortest", "reward": "goal"},
    "rxr": {"languages": "en,hi,te", "select_by": "ndtw", "teacher": "shortest", "reward": "goal"},
}


def _budget_text(name: str) -> str:
    paper, world = PAPER_BUDGET[name], WORLD_BUDGET[name]
    return f"{paper:,} with --data-dir, {world:,} on the built-in world" if isinstance(paper, int) else \
        f"{paper:g} with --data-dir, {world:g} on the built-in world"


def build_parser() -> argparse.ArgumentParser:
    """``--help`` documents every option from the dataclass, with the default each one really takes."""
    defaults = {name: _budget_text(name) for name in PAPER_BUDGET}
    defaults["il_weight"] = ", ".join(f"{v:g} for {task}" for task, v in IL_WEIGHT.items())
    for name in ("languages", "select_by", "teacher", "reward"):
        defaults[name] = "; ".join(f"{v[name]} for {task}" for task, v in TASK_DEFAULTS.items()
                                   if v[name] is not None)
    return config_parser(TrainConfig, prog="python -m agents.train", positional=("task",), defaults_text=defaults,
                         description="Train the EnvDrop speaker-follower agent (CLIP-ViL features) on R2R or RxR.")


def parse_config(argv: list[str] | None) -> TrainConfig:
    return config_from_args(TrainConfig, build_parser().parse_args(argv))


def default_out(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{cfg.task}-{time.strftime('%Y%m%d-%H%M%S')}"
