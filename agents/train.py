"""``python -m agents.train r2r|rxr [--backtranslate] ...``: train the EnvDrop speaker-follower agent.

The run goes through stages, each resumable after a kill from its last checkpoint:

1. ``speaker`` (with ``--backtranslate`` and no ``--speaker-checkpoint``, or ``--only speaker``): teacher-forced
   instruction generation; the best checkpoint by val_unseen BLEU.
2. ``follower``: imitation + A2C (EnvDrop); the best checkpoint by val_unseen SR (``--select-by spl``).
3. ``backtranslate``: from the best follower, each update a real-data pass and an augmented pass on new paths
   in the training houses, instructions written by the frozen speaker under environmental dropout. Its
   evaluations compete with stage 2's best, so ``follower_best.pt`` is never replaced by a worse follower
   (EnvDrop runs back-translation as a separate run, whose own best is kept beside the first run's; with
   ``--follower-checkpoint`` from elsewhere, as there, back-translation keeps its own best).

Everything lands in ``--out``: ``config.json`` (the resolved config), ``checkpoint.pt`` (latest, for
``--resume``), ``speaker_best.pt`` / ``follower_best.pt``, ``results/{split}.json`` (submission format, from
the best follower, test included; with ``--details`` also ``results/{split}.details.json``, the attention
and action scores that ``python -m eval.replay`` shows), ``scores.json`` and TensorBoard logs under ``tb/``.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from agents import distributed
from agents.augment import augmentation_episodes
from agents.follower import Follower, FollowerConfig, make_follower_optimizers
from agents.rollout import (IterationConfig, RolloutRandom, backtranslation_iteration, evaluate_follower,
                            evaluate_speaker, train_follower_iteration, train_speaker_iteration)
from agents.speaker import Speaker, SpeakerConfig, make_speaker_optimizers
from agents.train_config import TrainConfig, default_out, parse_config
from envs.atomic import remove_leftovers, write_json
from envs.checkpoint import load_checkpoint, load_model, prepare_run_folder, save_checkpoint
from envs.cli import command
from envs.datadir import DataDir, DataError, data_error
from envs.gym.vector_env import EpisodeSampler, VLNVectorEnv
from envs.world.builtin import resolve_data_dir
from eval.score import score_episode_results, write_results

VAL_SPLITS = ("val_seen", "val_unseen")


def stages_for(cfg: TrainConfig) -> list[str]:
    """Which stages this run trains, in order."""
    if cfg.only == "speaker":
        return ["speaker"]
    if cfg.only == "follower":
        return ["follower"]
    stages = []
    if cfg.backtranslate and not cfg.speaker_checkpoint:
        stages.append("speaker")
    if not (cfg.backtranslate and cfg.follower_checkpoint):
        stages.append("follower")
    if cfg.backtranslate:
        stages.append("backtranslate")
    return stages


class Trainer:
    """Holds the envs, models, optimisers and bookkeeping of one run (see the module docstring).

    ``data_dir`` is the resolved data directory (``main`` resolves ``--data-dir`` once).
    """

    def __init__(self, cfg: TrainConfig, out: Path, data_dir: Path) -> None:
        self.cfg, self.out, self.data_dir = cfg, out, data_dir
        self.device = torch.device(cfg.device)
        self.group = distributed.group()  # under torchrun: this rank plays its share of every batch
        self.main = self.group.is_main  # evaluation, checkpoints and logs are rank 0's
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        langs = cfg.language_list() if cfg.task == "rxr" else None
        # indices mode: the agents gather the features on their device (agents.observe), the env copies none
        common = dict(features=cfg.features, feature_dtype=cfg.feature_dtype, task=cfg.task, max_steps=cfg.max_steps,
                      languages=langs, metrics_in_info=False, teacher=cfg.teacher, reward=cfg.reward, joint=cfg.joint,
                      observation_mode="indices")
        local_batch = cfg.batch_size // self.group.world_size
        self.train_env = VLNVectorEnv(data_dir, "train", num_envs=local_batch, seed=cfg.seed,
                                      shard=self.group.shard(), **common)
        self.val_envs = {split: VLNVectorEnv(data_dir, split, num_envs=cfg.eval_batch_size, shuffle=False,
                                             **common)
                         for split in (VAL_SPLITS if self.main else ())}
        self.common = common
        self.random = RolloutRandom(cfg.seed, cfg.batch_size, self.group.rank * local_batch)
        vocab, dim = self.train_env.vocab, self.train_env.feature_dim
        follower_cfg = FollowerConfig(vocab_size=len(vocab), feature_dim=dim, dropout=cfg.dropout,
                                      feature_dropout=cfg.feature_dropout)
        speaker_cfg = SpeakerConfig(vocab_size=len(vocab), feature_dim=dim, dropout=cfg.speaker_dropout,
                                    feature_dropout=cfg.feature_dropout)
        self.follower = Follower(follower_cfg).to(self.device)
        self.speaker = Speaker(speaker_cfg).to(self.device)
        distributed.broadcast_parameters(self.follower, self.speaker)
        self.follower_opt = make_follower_optimizers(self.follower, cfg.lr)
        self.speaker_opt = make_speaker_optimizers(self.speaker, cfg.lr)
        self.iter_cfg = IterationConfig(il_weight=cfg.il_weight, aug_il_weight=cfg.aug_il_weight,
                                        env_dropout=cfg.env_dropout, env_dropout_per_env=cfg.env_dropout_per_env,
                                        aug_source=cfg.aug_source)
        self.aug_sampler: EpisodeSampler | None = None
        self.stages = stages_for(cfg)
        self.stage_index, self.iteration = 0, 0
        self.best: dict[str, dict] = {}
        self.history: list[dict] = []
        self.writer = None  # TensorBoard, opened by run(): building a trainer writes nothing in the run folder
        self.step = 0  # global TensorBoard step over stages

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        envs = {"train": self.train_env.get_state()}
        if self.aug_sampler is not None:
            envs["aug"] = self.aug_sampler.get_state()
        return {"stage_index": self.stage_index, "iteration": self.iteration, "step": self.step,
                "best": self.best, "history": self.history, "envs": envs, "random": self.random.get_state(),
                "follower": self.follower.state_dict(), "speaker": self.speaker.state_dict(),
                "follower_opt": {k: o.state_dict() for k, o in self.follower_opt.items()},
                "speaker_opt": {k: o.state_dict() for k, o in self.speaker_opt.items()}}

    def restore(self, path: Path) -> None:
        """Continue from a training-state checkpoint; one clear error (and nothing written) if it does not fit."""
        state = load_checkpoint(path, map_location=self.device, restore_rng=True, kind="training-state")
        try:
            self.follower.load_state_dict(state["follower"])
            self.speaker.load_state_dict(state["speaker"])
            for k, o in self.follower_opt.items():
                o.load_state_dict(state["follower_opt"][k])
            for k, o in self.speaker_opt.items():
                o.load_state_dict(state["speaker_opt"][k])
            self.train_env.set_state(state["envs"]["train"])
            if "random" in state:  # checkpoints from before the rollout generators were saved lack it
                self.random.set_state(state["random"])
            if "aug" in state["envs"]:
                self._make_aug_sampler().set_state(state["envs"]["aug"])
            self.stage_index, self.iteration, self.step = state["stage_index"], state["iteration"], state["step"]
            self.best, self.history = state["best"], state["history"]
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise data_error(path, f"does not fit this run ({type(err).__name__}: {first})",
                             "Resume with the options the run was started with (see its config.json: --task, "
                             "--features, --languages, --batch-size), or start a new run") from None

    def check_sources(self) -> None:
        """Load the checkpoints the user named (--speaker/--follower-checkpoint) now, so a bad one fails before
        any training rather than when back-translation reaches it."""
        for what, source in (("speaker", self.cfg.speaker_checkpoint), ("follower", self.cfg.follower_checkpoint)):
            if source and "backtranslate" in self.stages:  # into a copy: the stage itself loads it when it starts
                self._load_best(Path(source), copy.deepcopy(self.speaker if what == "speaker" else self.follower),
                                what)

    def open_log(self) -> None:
        """Open the TensorBoard writer (under RUN/tb)."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.out / "tb")) if self.main else None

    def save(self) -> None:
        if self.main:
            save_checkpoint(self.out / "checkpoint.pt", self.state(), "training-state")

    def save_best(self, name: str, model: torch.nn.Module, optimizers: dict, score: dict) -> None:
        """The model with what it needs to act again: its config, and the task, languages and vocabulary
        (words in id order) it reads instructions with."""
        save_checkpoint(self.out / f"{name}_best.pt", {
            "model": model.state_dict(), "config": dataclasses.asdict(model.cfg), "score": score,
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "task": self.cfg.task, "languages": self.common["languages"], "joint": self.cfg.joint,
            "vocab": list(self.train_env.vocab.words)}, name)

    # -- stages ----------------------------------------------------------------------------------
    def run(self) -> None:
        for self.stage_index in range(self.stage_index, len(self.stages)):
            stage = self.stages[self.stage_index]
            self._enter(stage)
            total = {"speaker": self.cfg.speaker_iters, "follower": self.cfg.iters,
                     "backtranslate": self.cfg.bt_iters}[stage]
            self._loop(stage, total)
            self.iteration = 0
        self.stage_index = len(self.stages)
        self.save()
        if self.writer is not None:
            self.writer.close()

    def _enter(self, stage: str) -> None:
        """Load what a stage starts from (resumed runs already hold it in the checkpoint)."""
        if stage != "speaker":
            # the speaker trains in its own stage only: its gradients and Adam moments (three times its weights,
            # ~90 MB at 640-d) leave memory and the checkpoints when a later stage starts
            self.speaker.zero_grad(set_to_none=True)
            for optimizer in self.speaker_opt.values():
                optimizer.state.clear()
        if self.iteration > 0:
            return
        if stage == "follower" and self.cfg.follower_checkpoint:  # --only follower, fine-tuning a trained one
            self._load_best(Path(self.cfg.follower_checkpoint), self.follower, "follower")
        if stage == "backtranslate":
            source = Path(self.cfg.follower_checkpoint) if self.cfg.follower_checkpoint else self.out / "follower_best.pt"
            self._load_best(source, self.follower, "follower")
            # weights only, fresh optimisers at --bt-lr: EnvDrop's back-translation run loads no optimiser
            # state (its --loadOptim is off by default)
            self.follower_opt = make_follower_optimizers(self.follower, self.cfg.bt_lr)
            speaker_source = (Path(self.cfg.speaker_checkpoint) if self.cfg.speaker_checkpoint
                              else self.out / "speaker_best.pt")
            self._load_best(speaker_source, self.speaker, "speaker")
            if self.cfg.follower_checkpoint:  # its score on these splits is unknown: keep back-translation's best
                self.best.pop("follower", None)
            if self.cfg.aug_source == "sampled":
                self._make_aug_sampler()

    def _load_best(self, path: Path, model: torch.nn.Module, what: str) -> None:
        if not path.exists():
            raise DataError(f"{path}: {what} checkpoint not found (training starts from it); "
                            f"train it first or pass --{what}-checkpoint")
        state = load_checkpoint(path, map_location=self.device, kind=what)
        load_model(model, state, path, vocab=list(self.train_env.vocab.words))

    def _make_aug_sampler(self) -> EpisodeSampler:
        """Back-translation's augmented paths: sampled in the training env's own houses (its graphs and the
        scans of its episodes), played in the training env itself."""
        if self.aug_sampler is None:
            train = self.train_env.episodes
            scans = list(dict.fromkeys(ep.scan for ep in train))
            episodes = augmentation_episodes(self.train_env.graphs, scans, seed=self.cfg.seed,
                                             max_paths_per_scan=self.cfg.aug_paths_per_scan,
                                             language=train[0].language)
            self.aug_sampler = EpisodeSampler(episodes, self.train_env.num_envs, seed=self.cfg.seed + 1,
                                              shard=self.group.shard())
            self.log_text(f"back-translation: {len(episodes)} sampled paths in {len(scans)} training houses")
        return self.aug_sampler

    def _loop(self, stage: str, total: int) -> None:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=self.iteration, desc=stage, disable=self.cfg.quiet or not self.main,
                   dynamic_ncols=True, file=sys.stdout)
        while self.iteration < total:
            stats = self._train_once(stage)
            self.iteration += 1
            self.step += 1
            if self.writer is not None:
                for key, value in stats.items():
                    self.writer.add_scalar(f"losses/{stage}/{key}", value, self.step)
            bar.update(1)
            if self.iteration % self.cfg.eval_every == 0 or self.iteration == total:
                if self.main:
                    scores = self._evaluate(stage)
                    bar.set_postfix_str(_short(scores))
                    self.save()
                distributed.barrier()  # the other ranks wait while rank 0 evaluates and saves
        bar.close()

    def _train_once(self, stage: str) -> dict[str, float]:
        if stage == "speaker":
            return train_speaker_iteration(self.speaker, self.speaker_opt, self.train_env)
        if stage == "follower":
            return train_follower_iteration(self.follower, self.follower_opt, self.train_env, self.iter_cfg,
                                            self.random)
        return backtranslation_iteration(self.follower, self.follower_opt, self.speaker, self.train_env,
                                         self.aug_sampler, self.iter_cfg, self.random)

    # -- evaluation ------------------------------------------------------------------------------
    def _evaluate(self, stage: str) -> dict:
        record = {"stage": stage, "iteration": self.iteration, "step": self.step, "time": time.time()}
        if stage == "speaker":
            tokenize = self.train_env.vocab.tokens
            for split, env in self.val_envs.items():
                record[f"{split}/bleu"] = evaluate_speaker(self.speaker, env, tokenize)["bleu"]
                self.writer.add_scalar(f"eval/{split}/bleu", record[f"{split}/bleu"], self.step)
            key = record["val_unseen/bleu"]
            if key > self.best.get("speaker", {}).get("key", -1.0):
                self.best["speaker"] = {"key": key, "iteration": self.iteration, "stage": stage}
                self.save_best("speaker", self.speaker, self.speaker_opt, record)
        else:
            results = {}
            for split, env in self.val_envs.items():
                results[split] = evaluate_follower(self.follower, env, details=self.cfg.details)
                summary = score(self.cfg.task, env, results[split])
                for metric, value in summary.items():
                    record[f"{split}/{metric}"] = value
                    if not metric.endswith("count"):
                        self.writer.add_scalar(f"eval/{split}/{metric}", value, self.step)
            key = record.get(f"val_unseen/average/{self.cfg.select_by}", record[f"val_unseen/{self.cfg.select_by}"])
            if key > self.best.get("follower", {}).get("key", -1.0):
                self.best["follower"] = {"key": key, "iteration": self.iteration, "stage": stage,
                                         "scores": {k: v for k, v in record.items() if "/" in k}}
                self.save_best("follower", self.follower, self.follower_opt, record)
                self._write_results(results)
        self.history.append(record)
        write_json(self.out / "scores.json", {"best": self.best, "history": self.history}, indent=2)
        self.writer.flush()
        return record

    def _write_results(self, results: dict[str, list[dict]]) -> None:
        """Results of the (new) best follower on the val splits and, where the data has it, the test split."""
        for split, entries in results.items():
            write_results(self.out / "results" / f"{split}.json", entries)
        data = DataDir(self.data_dir)
        if not (data.r2r_split("test") if self.cfg.task == "r2r" else data.rxr_split("test")).exists():
            return  # no test split in this data directory (a broken one is an error, not skipped)
        test_env = VLNVectorEnv(self.data_dir, "test", num_envs=self.cfg.eval_batch_size, shuffle=False,
                                **self.common)
        write_results(self.out / "results" / "test.json",
                      evaluate_follower(self.follower, test_env, details=self.cfg.details))

    def log_text(self, message: str) -> None:
        if not self.cfg.quiet and self.main:
            print(message, flush=True)


def score(task: str, env: VLNVectorEnv, results: list[dict]) -> dict[str, float]:
    """Score results with the official scorer's rules (:mod:`eval.score`) against the env's split: the pooled
    metrics, and for RxR ``{group}/{metric}`` per language group and ``average/{metric}`` over them."""
    report = score_episode_results(task, env.episodes, env.graphs, results)
    flat = dict(report.summary)
    for group, summary in report.languages.items():
        flat.update({f"{group}/{metric}": value for metric, value in summary.items()})
    return flat


def _short(record: dict) -> str:
    keys = [k for k in ("val_unseen/success", "val_unseen/spl", "val_unseen/bleu") if k in record]
    return " ".join(f"{k.split('/')[1]}={record[k]:.3f}" for k in keys)


def prepare_out(cfg: TrainConfig, per_language: bool = False) -> Path:
    """The run folder: new (refusing to overwrite another run) or, with --resume, the existing one (see
    :func:`envs.checkpoint.prepare_run_folder`: a run killed before its first checkpoint starts again)."""
    return prepare_run_folder(Path(cfg.out) if cfg.out else default_out(cfg), cfg.resume,
                              "config.json" if per_language else "checkpoint.pt")


def run(cfg: TrainConfig, out: Path, data_dir: Path) -> Trainer:
    """Train one model (all its stages) in ``out``, resuming there with ``cfg.resume`` (from its checkpoint.pt,
    or from the beginning when it was killed before the first one).

    Everything that can fail on the inputs (the data, the checkpoint to resume from, the checkpoints named by
    --speaker/--follower-checkpoint) is loaded and checked before anything is written, so a failed start or
    resume leaves the run folder as it was.
    """
    trainer = Trainer(cfg, out, data_dir)
    resumed = cfg.resume and (out / "checkpoint.pt").exists()
    if resumed:
        trainer.restore(out / "checkpoint.pt")
    trainer.check_sources()
    if trainer.main:
        remove_leftovers(out)  # temporary files of writes a kill interrupted (this run is their only writer)
        remove_leftovers(out / "results")
        write_json(out / "config.json", dataclasses.asdict(cfg) | {"data_dir_resolved": str(data_dir),
                                                                   "stages": trainer.stages,
                                                                   "processes": trainer.group.world_size}, indent=2)
    trainer.open_log()
    if resumed:
        trainer.log_text(f"resuming {out} at stage {trainer.stages[min(trainer.stage_index, len(trainer.stages) - 1)]}"
                         f", iteration {trainer.iteration}")
    elif cfg.resume:
        trainer.log_text(f"{out} has no checkpoint yet: starting it from the beginning")
    trainer.log_text(f"training {' -> '.join(trainer.stages)} on {trainer.data_dir} "
                     f"({len(trainer.train_env.episodes)} train episodes, {trainer.train_env.feature_dim}-d "
                     f"features); outputs in {out}")
    trainer.run()
    best = trainer.best.get("follower", {})
    summary = ", ".join(f"{k} {v:.3f}" for k, v in best.get("scores", {}).items()
                        if k.startswith("val_unseen/") and k.endswith(("/success", "/spl", "/ndtw")))
    where = f" ({best['stage']} iteration {best['iteration']})" if best else ""
    trainer.log_text(f"done. best follower{where}: {summary or 'n/a'}\noutputs: {out} "
                     f"(TensorBoard: tensorboard --logdir {out / 'tb'})")
    return trainer


def run_per_language(cfg: TrainConfig, out: Path, data_dir: Path) -> None:
    """RxR as CLIP-ViL trains it: one model per language group, each in ``out/{group}``; their best val_unseen
    scores and the average over the languages go to ``out/summary.json``."""
    groups = cfg.language_list()
    if cfg.resume:  # every model's checkpoint is checked before any model's folder changes
        for group in groups:
            if (out / group / "checkpoint.pt").exists():
                load_checkpoint(out / group / "checkpoint.pt", kind="training-state")
    if distributed.group().is_main:
        write_json(out / "config.json", dataclasses.asdict(cfg) | {"data_dir_resolved": str(data_dir),
                                                                   "models": groups}, indent=2)
    best = {}
    for group in groups:
        sub = out / group
        resume = cfg.resume and (sub / "checkpoint.pt").exists()
        sub.mkdir(parents=True, exist_ok=True)
        trainer = run(dataclasses.replace(cfg, languages=group, out=str(sub), resume=resume), sub, data_dir)
        best[group] = {k.split("/", 1)[1]: v for k, v in trainer.best.get("follower", {}).get("scores", {}).items()
                       if k.startswith("val_unseen/") and k.count("/") == 1}
    if not distributed.group().is_main:
        return
    metrics = [k for k in next(iter(best.values())) if k != "count"] if best else []
    best["average"] = {k: float(np.mean([s[k] for s in best.values()])) for k in metrics}
    write_json(out / "summary.json", {"val_unseen": best}, indent=2)
    print("RxR val_unseen, one model per language:")
    for group, scores in best.items():
        print(f"  {group:8s} " + " ".join(f"{k} {scores[k]:.3f}" for k in ("success", "spl", "ndtw", "sdtw", "cls")
                                         if k in scores))


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(argv).resolved()
    try:
        group, device = distributed.setup(cfg.device)  # under torchrun: join the other ranks
        cfg = dataclasses.replace(cfg, device=device)
        if group.world_size > 1:
            check_distributed(cfg, group.world_size)
        groups = cfg.language_list() if cfg.task == "rxr" else []
        per_language = len(groups) > 1 and not cfg.joint
        if group.is_main:  # rank 0 builds the world if needed and claims the run folder; the others follow
            data_dir, out = resolve_data_dir(cfg.data_dir), prepare_out(cfg, per_language)
        distributed.barrier()
        if not group.is_main:
            data_dir, out = resolve_data_dir(cfg.data_dir), Path(cfg.out)
        cfg = dataclasses.replace(cfg, out=str(out))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if per_language:
            run_per_language(cfg, out, data_dir)
        else:
            run(cfg, out, data_dir)
    finally:
        distributed.teardown()
    return 0


def check_distributed(cfg: TrainConfig, world_size: int) -> None:
    """What a run under torchrun needs: one run folder for all ranks and a batch they can share equally."""
    if not cfg.out:
        raise DataError("under torchrun pass --out: every rank must write to the same run folder")
    if cfg.batch_size % world_size or cfg.eval_batch_size < 1:
        raise DataError(f"--batch-size {cfg.batch_size} must be a multiple of the {world_size} processes "
                        "(each plays an equal share of every batch)")


if __name__ == "__main__":
    raise SystemExit(main())
