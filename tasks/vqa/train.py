"""``python -m tasks.vqa train``: train a Pythia-style or MCAN-style VQA head on CLIP grid features.

Reads VQA v2 (or GQA) question files, the answer label space and a grid feature file; trains with binary
cross-entropy on soft scores (Adam, linear warm-up over the first 5% of iterations), evaluates the official VQA
accuracy on the validation split every ``--eval-every`` iterations and keeps the best head. Without file
options it trains on the built-in world's V&L data (its grid features extracted on first use). Everything lands
in ``--out`` (see :mod:`tasks.vl.run`): ``config.json``, ``checkpoint.pt`` (``--resume``), ``best.pt``,
``results/val.json`` (``{question_id, answer}`` per question, the official results format), ``scores.json``
(with the majority-answer baseline) and TensorBoard logs.

``--head question-only`` trains the question-only baseline (no image) with the same code.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from envs.atomic import write_json
from envs.cli import command, parse_config
from envs.datadir import DataError
from tasks.tokenize import Vocab
from tasks.vl.run import Run, RunOptions, batch_indices, default_run_folder, optimizer_step, seed_everything
from features.encoders import load_encoder
from tasks.vl.sources import ImageStore, open_grid_features, vl_dir
from tasks.vqa.accuracy import summarize, vqa_accuracy
from tasks.vqa.data import LabelSpace, Question, load_gqa, load_vqa
from tasks.vqa.models import EndToEnd, VQAHeadConfig, make_head

QUESTION_LEN = 20  # <BOS> + up to 18 words + <EOS>, as MCAN's 14-token cut plus room for longer GQA questions
DEFAULT_LR = {"pythia": 1e-3, "mcan": 1e-4, "question-only": 1e-3}


@dataclass
class VQATrainConfig(RunOptions):
    """Options of ``python -m tasks.vqa train``."""

    head: Literal["pythia", "mcan", "question-only"] = "mcan"
    """the VQA head: pythia (top-down attention), mcan (co-attention transformer) or question-only (the
    baseline that sees no image)"""
    data_dir: Path | None = None
    """data directory whose vl/ folder holds the VQA files (default: the built-in world)"""
    dataset: Literal["vqa", "gqa"] = "vqa"
    """format of the question files: vqa (VQA v2 questions + annotations) or gqa (balanced question files)"""
    train_questions: Path | None = None
    """training questions (default: DATA/vl/vqa/train_questions.json)"""
    train_annotations: Path | None = None
    """training annotations, VQA only (default: DATA/vl/vqa/train_annotations.json)"""
    val_questions: Path | None = None
    """validation questions (default: DATA/vl/vqa/val_questions.json)"""
    val_annotations: Path | None = None
    """validation annotations, VQA only (default: DATA/vl/vqa/val_annotations.json)"""
    label_space: Path | None = None
    """answer label space, trainval_ans2label.json or trainval_label2ans.json (default: DATA/vl/vqa/'s; with
    explicit files and none given, the training questions' majority answers; for VQA v2, CLIP-ViL's 3,129)"""
    features: Path | None = None
    """grid feature file of the images (features.extract --grid); default DATA/vl/grid-{encoder}.h5, extracted
    on first use"""
    encoder: str = "RN50"
    """CLIP variant whose grid features are used when --features is not given"""
    weights: str | None = None
    """weights of --encoder for a first extraction (open_clip tag or file; default random init)"""
    finetune_encoder: bool = False
    """train end to end through the CLIP image tower (--encoder, --weights) on the images of --images instead of
    reading stored grid features"""
    images: Path | None = None
    """with --finetune-encoder: the image folder (default DATA/vl/images)"""
    encoder_lr: float = 1e-5
    """with --finetune-encoder: Adam learning rate of the image tower"""
    iters: int = 2000
    """training iterations (batches)"""
    batch_size: int = 64
    """questions per batch"""
    lr: float | None = None
    """Adam learning rate (default: 1e-3 for pythia and question-only, 1e-4 for mcan)"""
    hidden: int = 512
    """question LSTM size (MCAN's model size d)"""
    joint_dim: int = 1024
    """Pythia's joint space and MCAN's fused size"""
    layers: int = 6
    """MCAN encoder / decoder layers"""
    unknown_answers: Literal["drop", "error"] = "drop"
    """questions whose human answers are all outside the label space: drop them from training (LXMERT's
    choice) or stop with an error"""


@dataclass
class VQASplit:
    """Questions of one split with everything a head reads, in memory."""

    questions: list[Question]
    words: torch.Tensor  # [Q, L] word ids
    rows: torch.Tensor  # [Q] row of each question's image in ``features``
    features: torch.Tensor  # [I, N, C] float16 grid features of the split's images
    targets: torch.Tensor  # [Q, A] soft scores
    source: str  # the annotation (or GQA question) file


def load_questions(dataset: str, questions: Path, annotations: Path | None) -> list[Question]:
    """Questions of one split in either format."""
    return load_gqa(questions) if dataset == "gqa" else load_vqa(questions, annotations)


def make_split(questions: list[Question], vocab: Vocab, labels: LabelSpace, grid, source: str,
               unknown: str = "drop") -> VQASplit:
    """Encode questions, gather their images' grid features (missing ones are a :class:`DataError`; none for the
    question-only head, ``grid`` None), targets."""
    images = list(dict.fromkeys(q.image_id for q in questions))
    if grid is None:
        features = torch.zeros(1, 1, 1, dtype=torch.float16).expand(len(images), -1, -1)
    else:
        features = grid.stack(images, what=f"a question of {source}")  # [I, N, C]
    row_of = {image: i for i, image in enumerate(images)}
    words = torch.from_numpy(np.stack([vocab.encode(q.question, QUESTION_LEN) for q in questions]))
    targets, _ = labels.targets(questions, unknown, source)
    return VQASplit(questions, words, torch.tensor([row_of[q.image_id] for q in questions]), features, targets,
                    source)


@torch.no_grad()
def predict(model: torch.nn.Module, split: VQASplit, labels: LabelSpace, device: torch.device,
            batch: int = 256) -> list[str]:
    """The head's answer (the top label) to every question of ``split``."""
    model.eval()
    answers = []
    for start in range(0, len(split.questions), batch):
        idx = torch.arange(start, min(start + batch, len(split.questions)))
        logits = model(split.features[split.rows[idx]].to(device), split.words[idx].to(device))  # [b, A]
        answers += [labels.answers[i] for i in logits.argmax(1).tolist()]
    model.train()
    return answers


def score(questions: list[Question], answers: list[str]) -> dict:
    """Official VQA accuracy summary (overall, per answer type, per question type) of answers in order."""
    return summarize((vqa_accuracy(a, q.answers), q.answer_type, q.question_type) for q, a in zip(questions, answers))


def majority_baseline(train: list[Question], val: list[Question]) -> dict:
    """Every validation question answered with the most frequent training answer (after normalisation)."""
    from tasks.vqa.accuracy import normalize_answer

    top = Counter(normalize_answer(Counter(q.answers).most_common(1)[0][0]) for q in train if q.answers)
    return score(val, [top.most_common(1)[0][0]] * len(val)) | {"answer": top.most_common(1)[0][0]}


def _paths(cfg: VQATrainConfig) -> tuple[dict[str, Path | None], Path | None]:
    """The files of the run: explicit options, else the data directory's vl/vqa/ ones."""
    explicit = cfg.train_questions is not None and cfg.val_questions is not None and cfg.features is not None
    vl = None if explicit else vl_dir(cfg.data_dir)  # without a label space: the training answers
    base = vl / "vqa" if vl is not None else None
    given = {"train_questions": cfg.train_questions, "train_annotations": cfg.train_annotations,
             "val_questions": cfg.val_questions, "val_annotations": cfg.val_annotations,
             "label_space": cfg.label_space}
    default = {"train_questions": "train_questions.json", "train_annotations": "train_annotations.json",
               "val_questions": "val_questions.json", "val_annotations": "val_annotations.json",
               "label_space": "trainval_ans2label.json"}
    if cfg.dataset == "gqa":
        default["train_annotations"] = default["val_annotations"] = None
    paths = {k: v if v is not None or base is None or default[k] is None else base / default[k]
             for k, v in given.items()}
    return paths, vl


def train(cfg: VQATrainConfig) -> Run:
    """Run the training described by ``cfg`` (resuming when asked); returns the finished run."""
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    paths, vl = _paths(cfg)
    train_q = load_questions(cfg.dataset, paths["train_questions"], paths["train_annotations"])
    val_q = load_questions(cfg.dataset, paths["val_questions"], paths["val_annotations"])
    labels = LabelSpace.load(paths["label_space"]) if paths["label_space"] else LabelSpace.from_questions(train_q)
    vocab = Vocab.build((q.question for q in train_q), min_count=1)
    encoder, grid = None, None
    if cfg.finetune_encoder:
        if cfg.head == "question-only":
            raise DataError("--finetune-encoder with --head question-only: that head sees no image")
        torch.manual_seed(cfg.seed)
        encoder = load_encoder(cfg.encoder, cfg.weights, device)
        grid = ImageStore(cfg.images or vl_dir(cfg.data_dir) / "images", encoder)
    elif cfg.head != "question-only":
        grid = open_grid_features(cfg.features, vl, cfg.encoder, cfg.weights, quiet=cfg.quiet)
    source = str(paths["train_annotations"] or paths["train_questions"])
    train_split = make_split(train_q, vocab, labels, grid, source, cfg.unknown_answers)
    val_split = make_split(val_q, vocab, labels, grid, str(paths["val_annotations"] or paths["val_questions"]))
    keep = train_split.targets.sum(1) > 0  # questions with an answer in the label space
    head_cfg = VQAHeadConfig(head=cfg.head, vocab_size=len(vocab), num_answers=len(labels),
                             feature_dim=grid.dim if grid is not None else 1,
                             hidden=cfg.hidden, joint_dim=cfg.joint_dim, layers=cfg.layers, pad_id=vocab.pad_id)
    head = make_head(head_cfg)
    model = (head if encoder is None else EndToEnd(encoder, head)).to(device)
    lr = cfg.lr or DEFAULT_LR[cfg.head]
    groups = [{"params": head.parameters(), "lr": lr}]
    if encoder is not None:
        groups.append({"params": encoder.visual.parameters(), "lr": cfg.encoder_lr})
    optimizer = torch.optim.Adam(groups)
    warmup = max(1, cfg.iters // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / warmup))
    out = Path(cfg.out) if cfg.out else default_run_folder("vqa", cfg.head)
    baseline = majority_baseline(train_q, val_q)
    run = Run(out, cfg, cfg.resume, {"features_file": str(grid.path) if grid else None,
                                     "features_attrs": grid.attrs if grid else {},
                                     "label_space_file": str(paths["label_space"] or "") or None,
                                     "answers": len(labels)}, task="vqa")
    iteration = 0
    state = run.restore()
    if state is not None:
        with run.fitting():
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            iteration = state["iteration"]
    usable = keep.nonzero().flatten()
    if not cfg.quiet:
        print(f"training the {cfg.head} head on {len(usable)} questions "
              f"({len(train_q) - len(usable)} without an answer in the {len(labels)}-answer label space), "
              f"{len(val_q)} validation questions; outputs in {run.out}",
              flush=True)

    def checkpoint_state() -> dict:
        return {"model": model.state_dict(), "head": dataclasses.asdict(head_cfg), "vocab": vocab.words,
                "answers": labels.answers, "iteration": iteration,
                "end_to_end": "" if encoder is None else encoder.name,
                "features_attrs": {k: v for k, v in (grid.attrs if grid else {}).items()
                                   if isinstance(v, (str, int, float))}}

    from tqdm import tqdm

    bar = tqdm(total=cfg.iters, initial=iteration, desc=f"vqa {cfg.head}", disable=cfg.quiet, file=sys.stdout)
    model.train()
    while iteration < cfg.iters:
        idx = usable[batch_indices(len(usable), cfg.batch_size, cfg.seed, iteration)]
        logits = model(train_split.features[train_split.rows[idx]].to(device), train_split.words[idx].to(device))
        target = train_split.targets[idx].to(device)
        loss = F.binary_cross_entropy_with_logits(logits, target) * target.shape[1]  # bottom-up's scaling
        optimizer_step(loss, optimizer, scheduler, model.parameters(), 10.0)
        iteration += 1
        bar.update(1)
        run.scalars("losses", {"bce": loss.item(), "lr": scheduler.get_last_lr()[0]}, iteration)
        if iteration % cfg.eval_every == 0 or iteration == cfg.iters:
            answers = predict(model, val_split, labels, device)
            summary = score(val_q, answers)
            run.scalars("eval", {"overall": summary["overall"]} | {f"type/{k}": v for k, v in
                                                                   summary["perAnswerType"].items()}, iteration)
            if run.record({"iteration": iteration, "val": summary}, summary["overall"], checkpoint_state()):
                write_json(run.out / "results" / "val.json",
                           [{"question_id": q.question_id, "answer": a} for q, a in zip(val_q, answers)])
            run.save(checkpoint_state() | {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
            bar.set_postfix_str(f"val {summary['overall']:.2f}")
    bar.close()
    write_json(run.out / "scores.json", {"best": run.best, "history": run.history, "majority_baseline": baseline},
               indent=2)
    run.close()
    return run


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(VQATrainConfig, argv, prog="python -m tasks.vqa train", description=__doc__.splitlines()[0])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = train(cfg)
    best = run.best.get("val", {})
    if not cfg.quiet:
        print(f"done. best val accuracy {best.get('overall', 0):.2f} (iteration {run.best.get('iteration')}), per "
              f"answer type {best.get('perAnswerType')}\noutputs: {run.out}")
    return 0
