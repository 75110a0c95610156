"""``python -m agents.evaluate --checkpoint RUN/follower_best.pt --split val_unseen --out results.json``.

Runs a trained follower greedily on every episode of a split (the way training evaluates it), writes the
results file (the submission format) and, with ``--details``, ``results.details.json`` beside it: per
decision the attention over the instruction and every action's probability, which
``python -m eval.replay`` shows. Splits with goals are also scored and the summary is printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from agents.follower import Follower, FollowerConfig
from agents.rollout import evaluate_follower
from envs.checkpoint import FIX, load_checkpoint, load_model
from envs.cli import command, parse_config
from envs.datadir import DataError, data_error
from envs.gym.vector_env import VLNVectorEnv
from envs.world.builtin import resolve_data_dir
from eval.score import score_episode_results, write_results
from tasks.tokenize import Vocab


@dataclass
class EvaluateConfig:
    """Options of ``python -m agents.evaluate``."""

    checkpoint: Path
    """a follower checkpoint written by python -m agents.train (follower_best.pt)"""
    out: Path
    """the results file to write (submission format)"""
    split: str = "val_unseen"
    """the split to run: train, val_seen, val_unseen or test"""
    task: Literal["r2r", "rxr"] | None = None
    """the task the follower was trained on (default: the one its checkpoint names, else r2r)"""
    data_dir: Path | None = None
    """data directory (default: the built-in world)"""
    features: str | None = None
    """feature file name or path (default: as training: the built-in world's, or the directory's only file)"""
    languages: str | None = None
    """RxR language groups, comma-separated (default: the follower's own, from its checkpoint)"""
    details: bool = False
    """also write OUT's .details.json (attention and action probabilities per decision, for eval.replay)"""
    batch_size: int = 64
    """episodes per rollout"""
    device: str = "cpu"
    """torch device"""


def read_checkpoint(path: Path, device: str) -> dict:
    """A follower checkpoint of ``python -m agents.train``, checked for what evaluation needs."""
    return load_checkpoint(path, map_location=device, kind="follower")


def load_follower(state: dict, path: Path, vocab: list[str], feature_dim: int, device: str) -> Follower:
    """The checkpoint's follower, checked against the env it will act in (its words and feature size)."""
    try:
        config = FollowerConfig(**state["config"])
    except (TypeError, AssertionError) as err:
        raise data_error(path, f"holds a follower config that cannot be built ({err})", FIX) from None
    trained_words = state.get("vocab")
    if trained_words is not None:
        try:
            Vocab(trained_words)
        except (TypeError, ValueError) as err:
            raise data_error(path, f"holds a broken vocabulary ({err})", FIX) from None
    if (trained_words is not None and list(trained_words) != list(vocab)) or config.vocab_size != len(vocab) \
            or config.feature_dim != feature_dim:
        raise data_error(path, f"the follower reads {config.vocab_size} words and {config.feature_dim}-d features, "
                         f"but this data gives a different vocabulary ({len(vocab)} words) or {feature_dim}-d features",
                         "Evaluate on the data directory, task, languages and features it was trained with")
    follower = Follower(config).to(device)
    load_model(follower, state, path)
    return follower


def evaluate(cfg: EvaluateConfig) -> tuple[list[dict], dict | None]:
    """Results of the checkpoint on the split and, where the split has goals, their summary."""
    state = read_checkpoint(cfg.checkpoint, cfg.device)
    task = cfg.task or state.get("task", "r2r")
    languages = cfg.languages.split(",") if cfg.languages else state.get("languages")
    if task == "rxr" and not languages:
        languages = ["en"]
    data_dir = resolve_data_dir(cfg.data_dir)
    env = VLNVectorEnv(data_dir, cfg.split, features=cfg.features, task=task, num_envs=cfg.batch_size,
                       shuffle=False, languages=languages, metrics_in_info=False, joint=bool(state.get("joint")),
                       observation_mode="indices")  # the follower gathers the features on its device
    follower = load_follower(state, cfg.checkpoint, env.vocab.words, env.feature_dim, cfg.device)
    results = evaluate_follower(follower, env, details=cfg.details)
    if any(len(ep.path) < 2 for ep in env.episodes):  # a test split: no goals to score against
        return results, None
    return results, score_episode_results(task, env.episodes, env.graphs, results).summary


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(EvaluateConfig, argv, prog="python -m agents.evaluate", description=__doc__.split("\n\n")[0])
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(f"--device {cfg.device}: no CUDA device here; pass --device cpu")
    results, summary = evaluate(cfg)
    write_results(cfg.out, results)
    print(f"{len(results)} episodes of the {cfg.split} split written to {cfg.out}")
    if summary:
        print(" ".join(f"{k} {summary[k]:.3f}" for k in ("success", "spl", "nav_error", "ndtw")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
