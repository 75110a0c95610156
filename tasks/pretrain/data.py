"""What the V&L transformer reads: pretraining sentences (captions and VQA questions of the same images) and
the fine-tuning tasks (VQA v2, GQA, SNLI-VE), each as texts about rows of an image table.

The built-in world has no GQA files; ``gqa`` on it reads its VQA questions in GQA's form (:func:`as_gqa`): one
answer per question (the majority of the ten), scored by exact match, as GQA is. Real GQA balanced files are
read with :func:`tasks.vqa.data.load_gqa`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from envs.datadir import data_error
from tasks.captioning.data import load_karpathy
from tasks.vl.snli_ve import LABELS as SNLI_LABELS
from tasks.vl.snli_ve import load_snli_ve
from tasks.vqa.accuracy import normalize_answer, summarize, vqa_accuracy
from tasks.vqa.data import LabelSpace, Question, load_gqa, load_vqa

TASKS = ("vqa", "snli-ve", "gqa")


@dataclass
class Texts:
    """Sentences about images: sentence ``k`` is ``texts[k]`` about image ``image_ids[rows[k]]``, with targets
    ``[S, K]`` (soft answer scores, or a one-hot entailment label; zeros for a caption) and the item it came
    from (a :class:`tasks.vqa.data.Question`, an SNLI-VE pair, or None for a caption), for scoring."""

    image_ids: list[str]
    rows: torch.Tensor  # [S]
    texts: list[str]
    targets: torch.Tensor  # [S, K]
    items: list = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_question(self) -> torch.Tensor:
        """``[S]`` True where the sentence is a question (it has an item with answers)."""
        return torch.tensor([isinstance(item, Question) for item in self.items])


def _texts(image_of: list[str], texts: list[str], targets: torch.Tensor, items: list, source: str) -> Texts:
    images = list(dict.fromkeys(image_of))
    row = {image: i for i, image in enumerate(images)}
    return Texts(images, torch.tensor([row[i] for i in image_of], dtype=torch.long), texts, targets, items, source)


def load_corpus(vl: Path, split: str, labels: LabelSpace) -> Texts:
    """The pretraining sentences of one split of ``DATA/vl``: every caption (Karpathy file) and every VQA question
    (with its soft scores over ``labels``) of the split's images."""
    karpathy = vl / "captions" / "dataset_world.json"
    wanted = {"train": ("train", "restval")}.get(split, (split,))
    captions = [(image.image_id, c) for image in load_karpathy(karpathy) if image.split in wanted
                for c in image.captions]
    questions = load_vqa(vl / "vqa" / f"{split}_questions.json", vl / "vqa" / f"{split}_annotations.json")
    if not captions and not questions:
        raise data_error(vl, f"has no captions or questions of split {split!r}", "Pretrain on a split with data")
    scores, _ = labels.targets(questions)
    targets = torch.cat([torch.zeros(len(captions), len(labels)), scores])
    return _texts([i for i, _ in captions] + [q.image_id for q in questions], [c for _, c in captions] +
                  [q.question for q in questions], targets, [None] * len(captions) + questions, str(karpathy))


def as_gqa(questions: list[Question]) -> list[Question]:
    """VQA questions in GQA's form: one answer, the (normalised) majority of the human answers."""
    return [replace(q, answers=[normalize_answer(Counter(q.answers).most_common(1)[0][0])]) for q in questions]


def question_texts(questions: list[Question], labels: LabelSpace, source: str) -> Texts:
    """VQA / GQA questions with their soft scores over ``labels``."""
    targets, _ = labels.targets(questions, source=source)
    return _texts([q.image_id for q in questions], [q.question for q in questions], targets, questions, source)


def snli_texts(path: Path) -> Texts:
    """SNLI-VE pairs: the hypothesis about the image, a one-hot label over entailment, neutral, contradiction."""
    pairs = load_snli_ve(path)
    targets = torch.zeros(len(pairs), len(SNLI_LABELS))
    targets[torch.arange(len(pairs)), torch.tensor([SNLI_LABELS.index(p.label) for p in pairs])] = 1
    return _texts([p.image_id for p in pairs], [p.hypothesis for p in pairs], targets, pairs, str(path))


def load_task(task: str, path: Path, annotations: Path | None, labels: LabelSpace | None,
              gqa_from_vqa: bool = False) -> Texts:
    """One split of a fine-tuning task (``labels``: the answer space of VQA and GQA)."""
    if task == "snli-ve":
        return snli_texts(path)
    if task == "gqa" and not gqa_from_vqa:
        questions = load_gqa(path)
    else:
        questions = load_vqa(path, annotations)
        questions = as_gqa(questions) if task == "gqa" else questions
    return question_texts(questions, labels, str(annotations or path))


def task_classes(task: str, train: list, labels_file: Path | None) -> list[str]:
    """The classes of a task: SNLI-VE's three labels, else the answer space (the file, or the training answers)."""
    if task == "snli-ve":
        return list(SNLI_LABELS)
    return (LabelSpace.load(labels_file) if labels_file else LabelSpace.from_questions(train)).answers


def score(task: str, split: Texts, classes: list[str], predicted: list[int]) -> dict:
    """The task's accuracy in percent: VQA's official accuracy (GQA's exact match, one answer) per answer and
    question type; SNLI-VE's accuracy per gold label."""
    if task == "snli-ve":
        return summarize((float(classes[p] == pair.label), pair.label, "all")
                         for pair, p in zip(split.items, predicted))
    return summarize((vqa_accuracy(classes[p], q.answers), q.answer_type, q.question_type)
                     for q, p in zip(split.items, predicted))
