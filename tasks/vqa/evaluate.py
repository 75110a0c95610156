"""``python -m tasks.vqa eval``: the official VQA accuracy of a trained head, or of a results file.

With ``--checkpoint`` the head answers the questions (its results are written to ``--out``); with
``--results`` a results file (``[{question_id, answer}, ...]``, the official format) is scored as it is.
Prints overall, per-answer-type and per-question-type accuracy (``--json`` for the numbers alone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from envs.atomic import write_json
from envs.checkpoint import load_checkpoint
from envs.cli import command, parse_config
from envs.datadir import DataError, data_error
from tasks.tokenize import Vocab
from tasks.vl.results import read_results as read_results_file
from features.encoders import load_encoder
from tasks.vl.sources import ImageStore, open_grid_features, vl_dir
from tasks.vqa.data import LabelSpace, Question
from tasks.vqa.models import EndToEnd, VQAHeadConfig, make_head
from tasks.vqa.train import load_questions, make_split, predict, score


@dataclass
class VQAEvalConfig:
    """Options of ``python -m tasks.vqa eval``."""

    checkpoint: Path | None = None
    """a trained head (best.pt of a tasks.vqa train run) to answer the questions"""
    results: Path | None = None
    """a results file ([{question_id, answer}]) to score instead of running a head"""
    data_dir: Path | None = None
    """data directory whose vl/vqa/ holds the split (default: the built-in world)"""
    split: str = "val"
    """split of the data directory's vl/vqa/ files when --questions is not given"""
    dataset: Literal["vqa", "gqa"] = "vqa"
    """format of the question files"""
    questions: Path | None = None
    """questions to answer (default DATA/vl/vqa/{split}_questions.json)"""
    annotations: Path | None = None
    """their annotations, VQA only (default DATA/vl/vqa/{split}_annotations.json)"""
    features: Path | None = None
    """grid features of the images (default DATA/vl/grid-{encoder}.h5, extracted on first use)"""
    encoder: str = "RN50"
    """CLIP variant of the default features"""
    images: Path | None = None
    """image folder of a head trained end to end (--finetune-encoder; default DATA/vl/images)"""
    out: Path | None = None
    """write the head's answers here as a results file"""
    json: bool = False
    """print the scores as JSON"""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """torch device"""


def read_results(path: Path, questions: list[Question]) -> list[str]:
    """The answers of a results file in the order of ``questions``; a results file for other questions, or a
    malformed entry, is a :class:`DataError` naming the file and the entry."""
    answers = read_results_file(path, "question_id", "answer", "VQA results file")
    known = {q.question_id for q in questions}
    extra = [qid for qid in answers if qid not in known]
    if extra:
        raise data_error(path, f"answers question {extra[0]} that the annotations do not hold ({len(extra)} such)",
                         "Score a results file against the annotations of its own split")
    missing = [q.question_id for q in questions if q.question_id not in answers]
    if missing:
        raise data_error(path, f"has no answer for question {missing[0]} ({len(missing)} missing)",
                         "Answer every question of the split (the official evaluation requires it)")
    return [answers[q.question_id] for q in questions]


def evaluate(cfg: VQAEvalConfig) -> dict:
    """Score a head or a results file on one split; returns the summary."""
    if (cfg.checkpoint is None) == (cfg.results is None):
        raise DataError("give exactly one of --checkpoint (a trained head) or --results (a results file)")
    vl = None
    questions, annotations = cfg.questions, cfg.annotations
    if questions is None:
        vl = vl_dir(cfg.data_dir)
        questions = vl / "vqa" / f"{cfg.split}_questions.json"
        annotations = annotations or vl / "vqa" / f"{cfg.split}_annotations.json"
    items = load_questions(cfg.dataset, questions, annotations)
    unscored = [q.question_id for q in items if not q.answers]
    if unscored:
        raise data_error(annotations or questions, f"question {unscored[0]} has no human answers to score against",
                         "Evaluate on a split with annotations (test answers are scored by the server)")
    if cfg.results is not None:
        return score(items, read_results(cfg.results, items))
    state = load_checkpoint(cfg.checkpoint, map_location=cfg.device, kind=("vqa-head", "vqa-training-state"))
    model = make_head(VQAHeadConfig(**state["head"]))
    if vl is None and (cfg.features is None or state.get("end_to_end")):
        vl = vl_dir(cfg.data_dir) if cfg.images is None else None
    grid = None  # the question-only head reads no image
    if state.get("end_to_end"):  # trained through the image tower: its weights are in the checkpoint
        encoder = load_encoder(state["end_to_end"], None, cfg.device)
        model, grid = EndToEnd(encoder, model), ImageStore(cfg.images or vl / "images", encoder)
    elif state["head"]["head"] != "question-only":
        grid = open_grid_features(cfg.features, vl, cfg.encoder)
    model = model.to(cfg.device)
    model.load_state_dict(state["model"])
    labels, vocab = LabelSpace(state["answers"]), Vocab(state["vocab"])
    split = make_split(items, vocab, labels, grid, str(annotations or questions))
    answers = predict(model, split, labels, torch.device(cfg.device))
    if cfg.out is not None:
        write_json(cfg.out, [{"question_id": q.question_id, "answer": a} for q, a in zip(items, answers)])
    return score(items, answers)


def format_summary(summary: dict) -> str:
    lines = [f"VQA accuracy {summary['overall']:.2f} over {summary['count']} questions"]
    lines += [f"  {kind:10s} {value:6.2f}" for kind, value in summary["perAnswerType"].items()]
    lines += ["per question type:"] + [f"  {kind:20s} {value:6.2f}" for kind, value in summary["perQuestionType"].items()]
    return "\n".join(lines)


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(VQAEvalConfig, argv, prog="python -m tasks.vqa eval", description=__doc__.splitlines()[0])
    summary = evaluate(cfg)
    print(json.dumps(summary, indent=2) if cfg.json else format_summary(summary))
    return 0
