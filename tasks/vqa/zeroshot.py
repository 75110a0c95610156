"""``python -m tasks.vqa zeroshot``: CLIP as a zero-shot VQA model (the CLIP-ViL paper's Table 7).

For every question, the text tower of the same open_clip model embeds the prompt ``"question: Q answer: A"``
for every candidate answer A (the label space); the answer whose prompt is most similar (cosine) to the
image's CLIP embedding is the prediction, scored with the official VQA accuracy per answer type and per
question type. The paper found this near chance (RN50x4: yes/no 0.446, number 0.118, other 0.034).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from envs.atomic import write_json
from envs.cli import command, parse_config
from envs.datadir import data_error
from features.encoders import ENCODERS, load_clip
from features.grid import image_files, read_image
from tasks.vl.sources import vl_dir
from tasks.vqa.data import LabelSpace, load_vqa
from tasks.vqa.evaluate import format_summary
from tasks.vqa.train import score

PROMPT = "question: {question} answer: {answer}"


@dataclass
class ZeroShotConfig:
    """Options of ``python -m tasks.vqa zeroshot``."""

    encoder: str = "RN50"
    """CLIP variant (both towers are used)"""
    weights: str | None = None
    """open_clip tag or a full CLIP weights file (both towers); default random init (near chance by design)"""
    data_dir: Path | None = None
    """data directory whose vl/ holds the questions and images (default: the built-in world)"""
    split: str = "val"
    """split of DATA/vl/vqa/ when --questions is not given"""
    questions: Path | None = None
    """VQA v2 questions (default DATA/vl/vqa/{split}_questions.json)"""
    annotations: Path | None = None
    """their annotations (default DATA/vl/vqa/{split}_annotations.json)"""
    images: Path | None = None
    """folder of the questions' images (default DATA/vl/images)"""
    label_space: Path | None = None
    """candidate answers (trainval_ans2label.json / label2ans.json; default DATA/vl/vqa/trainval_ans2label.json)"""
    prompt: str = PROMPT
    """prompt template with {question} and {answer}"""
    max_questions: int = 0
    """score only the first N questions (0: all)"""
    out: Path | None = None
    """write the answers here as a VQA results file"""
    json: bool = False
    """print the scores as JSON"""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """torch device"""


@torch.inference_mode()
def zero_shot(cfg: ZeroShotConfig) -> tuple[dict, list[dict]]:
    """Answer and score the questions; returns ``(summary, results)``."""
    vl = None
    if cfg.questions is None or cfg.images is None or cfg.label_space is None:
        vl = vl_dir(cfg.data_dir)
    questions_path = cfg.questions or vl / "vqa" / f"{cfg.split}_questions.json"
    annotations = cfg.annotations or (vl / "vqa" / f"{cfg.split}_annotations.json" if cfg.questions is None else None)
    questions = load_vqa(questions_path, annotations)
    if cfg.max_questions:
        questions = questions[: cfg.max_questions]
    labels = LabelSpace.load(cfg.label_space or vl / "vqa" / "trainval_ans2label.json")
    folder = Path(cfg.images or vl / "images")
    files = image_files(folder)
    for q in questions:
        if q.image_id not in files:
            raise data_error(questions_path, f"question {q.question_id} field 'image_id': image {q.image_id} is not "
                             f"in {folder}", "Pass --images the folder holding every question's image")
    torch.manual_seed(0)
    clip = load_clip(cfg.encoder, cfg.weights, cfg.device)
    image_emb: dict[str, torch.Tensor] = {}
    text_emb: dict[str, torch.Tensor] = {}  # per question text: [A, E] normalised prompt embeddings
    results = []
    for q in questions:
        if q.image_id not in image_emb:
            image_emb[q.image_id] = torch.nn.functional.normalize(clip.encoder.pooled(read_image(files[q.image_id])), dim=-1)[0]
        if q.question not in text_emb:
            prompts = [cfg.prompt.format(question=q.question, answer=a) for a in labels.answers]
            emb = torch.cat([clip.encode_text(prompts[i : i + 256]) for i in range(0, len(prompts), 256)])
            text_emb[q.question] = torch.nn.functional.normalize(emb, dim=-1)
        best = int((text_emb[q.question] @ image_emb[q.image_id]).argmax())
        results.append({"question_id": q.question_id, "answer": labels.answers[best]})
    scored = [q for q in questions if q.answers]
    by_id = {r["question_id"]: r["answer"] for r in results}
    summary = score(scored, [by_id[q.question_id] for q in scored]) if scored else {}
    return summary, results


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(ZeroShotConfig, argv, prog="python -m tasks.vqa zeroshot", description=__doc__.splitlines()[0],
                       choices={"encoder": ENCODERS})
    summary, results = zero_shot(cfg)
    if cfg.out is not None:
        write_json(cfg.out, results)
    if summary:
        print(json.dumps(summary, indent=2) if cfg.json else format_summary(summary))
    else:
        print(f"answered {len(results)} questions (no annotations to score against)")
    return 0
