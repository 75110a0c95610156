"""The configuration of ``python -m agents.train``: one dataclass, each field's docstring is its ``--help``."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

from envs.cli import field_docs

# Budgets: the paper's for real data (EnvDrop / CLIP-ViL run scripts), a 15-minute CPU run for the built-in world.
# The world's learning rate is 5x EnvDrop's: at 1e-4 its 400 follower iterations (EnvDrop runs 80k) end before
# the follower has learnt to ground landmark words in the views (val_unseen SR 27% against 21% blind); at 5e-4
# it does (44% against 21%), and 1e-3 diverges. Back-translation starts fresh RMSprop optimisers (as EnvDrop's
# run does), whose first steps are large; at 5e-4 that undid stage 2 (SR 44% -> 34%), at 1e-4 it does not.
PAPER_BUDGET = {"speaker_iters": 80_000, "iters": 80_000, "bt_iters": 100_000, "eval_every": 2_000, "lr": 1e-4}
WORLD_BUDGET = {"speaker_iters": 150, "iters": 400, "bt_iters": 50, "eval_every": 100, "lr": 5e-4}


@dataclass
class TrainConfig:
    task: str = "r2r"
    """task to train: r2r or rxr"""
    data_dir: str | None = None
    """data directory (connectivity/, R2R/, RxR/, features/); default: the built-in world"""
    features: str | None = None
    """feature file name or path inside DATA/features, or 'none' for zero features (blind agent)"""
    backtranslate: bool = False
    """after the follower, fine-tune it with back-translation (speaker-written instructions on new paths)"""
    only: str | None = None
    """train only the 'speaker' or only the 'follower' (stage 1, no back-translation)"""
    speaker_checkpoint: str | None = None
    """a trained speaker (speaker_best.pt) for back-translation; without it the speaker is trained first"""
    follower_checkpoint: str | None = None
    """a trained follower to start back-translation from (skips follower stage 1)"""
    iters: int | None = None
    """follower stage-1 iterations (default: 80,000 on real data; a 15-minute budget on the built-in world)"""
    speaker_iters: int | None = None
    """speaker iterations (default: 80,000 on real data; a short budget on the built-in world)"""
    bt_iters: int | None = None
    """back-translation updates, each a real and an augmented pass (default: 100,000; short on the world)"""
    eval_every: int | None = None
    """iterations between validation runs and checkpoints"""
    batch_size: int = 64
    """episodes per rollout"""
    eval_batch_size: int = 64
    """episodes per rollout when evaluating (greedy decoding; larger is faster)"""
    max_steps: int = 35
    """actions per episode before it is cut off"""
    il_weight: float | None = None
    """weight of the teacher-forced (imitation) loss; default 0.2 (R2R), 0.4 (RxR, CLIP-ViL)"""
    aug_il_weight: float = 0.6
    """imitation weight on the augmented pass of back-translation"""
    lr: float | None = None
    """learning rate of the speaker (Adam) and the follower (RMSprop); default 1e-4 (EnvDrop's) on real data,
    5e-4 for the built-in world's short budget"""
    bt_lr: float = 1e-4
    """learning rate of back-translation's fresh follower optimisers (EnvDrop's 1e-4, on the world too)"""
    env_dropout: float = 0.4
    """environmental dropout: probability of dropping a feature channel on the augmented pass"""
    env_dropout_per_env: bool = False
    """one environmental-dropout mask per environment (the paper) instead of per batch (EnvDrop's code)"""
    aug_paths_per_scan: int | None = 200
    """sampled augmentation paths per training scan (None: every eligible pair)"""
    select_by: str = "success"
    """val_unseen metric that picks the best follower: success (EnvDrop) or spl"""
    languages: str | None = None
    """RxR language group to train (en, hi or te; CLIP-ViL trains one model per language; default en)"""
    out: str | None = None
    """output folder (config, checkpoints, TensorBoard logs, results); default runs/{task}-{time}"""
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
        il = self.il_weight if self.il_weight is not None else (0.4 if self.task == "rxr" else 0.2)
        languages = self.languages or ("en" if self.task == "rxr" else None)  # one model per language
        return dataclasses.replace(self, il_weight=il, languages=languages, **values)


def build_parser() -> argparse.ArgumentParser:
    """``--help`` documents every option from the dataclass."""
    parser = argparse.ArgumentParser(
        prog="python -m agents.train",
        description="Train the EnvDrop speaker-follower agent (CLIP-ViL features) on R2R or RxR.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    docs = field_docs(TrainConfig)
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        name = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "task":
            parser.add_argument("task", nargs="?", default="r2r", choices=["r2r", "rxr"], help=docs[f.name])
        elif isinstance(default, bool):
            parser.add_argument(name, action="store_true", help=docs[f.name])
        else:
            kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
            choices = {"only": ["speaker", "follower"], "select_by": ["success", "spl"],
                       "languages": ["en", "hi", "te"]}.get(f.name)
            parser.add_argument(name, type=kind, default=default, choices=choices, help=docs[f.name])
    return parser


def parse_config(argv: list[str] | None) -> TrainConfig:
    args = build_parser().parse_args(argv)
    return TrainConfig(**vars(args))


def default_out(cfg: TrainConfig) -> Path:
    import time

    return Path("runs") / f"{cfg.task}-{time.strftime('%Y%m%d-%H%M%S')}"
