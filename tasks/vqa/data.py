"""VQA data: VQA v2 and GQA question files, the answer label space and soft-score targets.

* VQA v2 (``v2_OpenEnded_mscoco_{split}_questions.json`` + ``v2_mscoco_{split}_annotations.json``, or the
  built-in world's ``vl/vqa/{split}_questions.json`` + ``_annotations.json``): questions
  ``{image_id, question, question_id}``; annotations ``{question_id, image_id, question_type, answer_type,
  multiple_choice_answer, answers: [{answer, answer_confidence, answer_id}] x 10}``. Test splits have no
  annotations.
* GQA balanced question files (``{split}_balanced_questions.json``): a dict ``question id -> {imageId,
  question, answer, fullAnswer, types: {structural, semantic, detailed}, ...}``; one answer per question,
  scored by exact match; the question type is ``types.structural`` (verify, query, choose, logical, compare).
* The label space: LXMERT's / CLIP-ViL's ``trainval_ans2label.json`` (a dict answer -> id) or
  ``trainval_label2ans.json`` (a list); 3,129 answers for VQA v2 (``shared/data/vqa_v2_answer_vocab_clipvil``).
* Targets: per question a ``[A]`` vector holding, for each label, the official accuracy that answer would
  score (:func:`tasks.vqa.accuracy.answer_scores`); human answers outside the label space are left out,
  as LXMERT's and Pythia's loaders do (``--unknown-answers error`` refuses them instead).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from envs.datadir import DataError, data_error, read_json
from envs.validate import check_text, first_duplicate, kind_names, shown
from tasks.vqa.accuracy import answer_scores, infer_answer_type, normalize_answer


@dataclass
class Question:
    """One question with its (up to ten) human answers; ``answers`` is empty for test questions."""

    question_id: int | str
    image_id: str
    question: str
    question_type: str = ""
    answer_type: str = ""
    answers: list[str] = field(default_factory=list)


VQA_FIX = "Check the file is in the VQA v2 format (download it again, or pair it with its own split's file)"


def _field(record: object, name: str, path: Path, where: str, kinds: type | tuple = object,
           fix: str = "Check the file is in the VQA v2 / GQA format"):
    if not isinstance(record, dict) or name not in record:
        raise data_error(path, f"{where} has no field {name!r}", fix)
    value = record[name]
    if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not object):
        raise data_error(path, f"{where} field {name!r} is {type(value).__name__} {shown(value)}",
                         f"Expected {kind_names(kinds)}. {fix}")
    return value


def _entries(data: object, name: str, path: Path) -> list:
    """The non-empty list ``data[name]`` of a VQA file (``questions`` or ``annotations``)."""
    entries = _field(data, name, path, "the file", list, VQA_FIX)
    if not entries:
        raise data_error(path, f"field {name!r} is an empty list", f"A VQA file holds at least one entry. {VQA_FIX}")
    return entries


def _unique(path: Path, name: str, ids: list) -> None:
    """Refuse a ``question_id`` that two entries share (answers would be scored against the wrong question)."""
    twice = first_duplicate(ids)
    if twice is not None:
        raise data_error(path, f"{name}[{twice[1]}] field 'question_id' is {ids[twice[1]]!r}, the same as "
                         f"{name}[{twice[0]}]'s", f"Each question needs its own question_id. {VQA_FIX}")


def load_vqa(questions: str | os.PathLike, annotations: str | os.PathLike | None = None) -> list[Question]:
    """Read a VQA v2 question file and, when given, its annotation file.

    Checked as read: both are objects with a non-empty ``questions`` / ``annotations`` list; ids are ints or
    strings and unique; question texts and answers are non-empty strings; every question has its annotation
    about the same image. A malformed file is one :class:`DataError` naming the file, the entry and the field.
    """
    qpath = Path(questions)
    fix = "Give the VQA v2 questions file (v2_OpenEnded_mscoco_*_questions.json)"
    data = read_json(qpath, "VQA questions file", fix)
    entries = _entries(data, "questions", qpath)
    out = []
    for k, entry in enumerate(entries):
        where = f"questions[{k}]"
        qid = _field(entry, "question_id", qpath, where, (int, str), VQA_FIX)
        where = f"questions[{k}] (question {qid})"
        image = _field(entry, "image_id", qpath, where, (int, str), VQA_FIX)
        out.append(Question(qid, str(image), check_text(qpath, where, entry, "question", VQA_FIX)))
    _unique(qpath, "questions", [q.question_id for q in out])
    if annotations is None:
        return out
    apath = Path(annotations)
    data = read_json(apath, "VQA annotations file", "Give the VQA v2 annotations file (v2_mscoco_*_annotations.json)")
    by_id = {}
    entries = _entries(data, "annotations", apath)
    for k, entry in enumerate(entries):
        where = f"annotations[{k}]"
        qid = _field(entry, "question_id", apath, where, (int, str), VQA_FIX)
        where = f"annotations[{k}] (question {qid})"
        if qid in by_id:
            raise data_error(apath, f"annotations[{k}] field 'question_id' is {qid!r}, the same as annotations"
                             f"[{by_id[qid][2]}]'s", f"Each question has one annotation. {VQA_FIX}")
        answers = _field(entry, "answers", apath, where, list, VQA_FIX)
        if not answers:
            raise data_error(apath, f"{where} field 'answers' is an empty list", "Every annotation needs its human "
                             f"answers (ten in VQA v2). {VQA_FIX}")
        texts = [check_text(apath, f"annotations[{k}].answers[{j}]", a, "answer", VQA_FIX)
                 for j, a in enumerate(answers)]
        by_id[qid] = (entry, texts, k)
    for question in out:
        if question.question_id not in by_id:
            raise data_error(apath, f"has no annotation for question {question.question_id} of {qpath.name}",
                             "Pair the questions file with its own annotations file")
        entry, texts, _ = by_id[question.question_id]
        if str(entry.get("image_id", question.image_id)) != question.image_id:
            raise data_error(apath, f"question {question.question_id} is about image {entry['image_id']} here but "
                             f"image {question.image_id} in {qpath.name}", "Pair the files of one split")
        question.answers = texts
        question.answer_type = entry.get("answer_type") or infer_answer_type(texts)
        question.question_type = entry.get("question_type") or " ".join(question.question.lower().split()[:2])
    return out


def load_gqa(path: str | os.PathLike) -> list[Question]:
    """Read a GQA (balanced) question file: one answer per question, question type = ``types.structural``."""
    path = Path(path)
    data = read_json(path, "GQA questions file", "Give a GQA question file ({split}_balanced_questions.json)")
    if not isinstance(data, dict):
        raise data_error(path, f"is a {type(data).__name__}, a GQA question file is a dict of questions",
                         "Give a GQA question file ({split}_balanced_questions.json)")
    out = []
    for qid, entry in data.items():
        where = f"question {qid!r}"
        answer = entry.get("answer") if isinstance(entry, dict) else None
        types = entry.get("types", {}) if isinstance(entry, dict) else {}
        out.append(Question(qid, str(_field(entry, "imageId", path, where, (str, int))),
                            _field(entry, "question", path, where, str),
                            question_type=types.get("structural", ""),
                            answer_type="yes/no" if answer in ("yes", "no") else "other",
                            answers=[] if answer is None else [str(answer)]))
    return out


class LabelSpace:
    """The candidate answers a VQA head classifies into (normalised as the official evaluation does)."""

    def __init__(self, answers: list[str], source: str = "") -> None:
        self.answers = list(answers)
        self.index = {a: i for i, a in enumerate(self.answers)}
        self.source = source
        twice = first_duplicate(self.answers)
        if twice is not None:
            raise data_error(source or "label space", f"answer {self.answers[twice[1]]!r} appears twice (labels "
                             f"{twice[0]} and {twice[1]})", "Each candidate answer appears once")

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelSpace:
        """Read ``trainval_ans2label.json`` (dict answer -> id) or ``trainval_label2ans.json`` (list)."""
        path = Path(path)
        data = read_json(path, "answer label space", "Give trainval_ans2label.json or trainval_label2ans.json")
        if not data:
            raise data_error(path, "holds no answers", "Give trainval_ans2label.json or trainval_label2ans.json")
        if isinstance(data, dict):
            wrong = next((a for a, i in data.items() if type(i) is not int), None)
            if wrong is not None:
                raise data_error(path, f"entry {wrong!r} is {shown(data[wrong])}, not an integer label id",
                                 "Give trainval_ans2label.json (answer -> id from 0 to N-1)")
            ids = sorted(data.values())
            if ids != list(range(len(ids))):
                raise data_error(path, "label ids are not 0..N-1", "Each answer needs a distinct id from 0 to N-1")
            answers = [""] * len(data)
            for answer, i in data.items():
                answers[i] = answer
        elif isinstance(data, list) and all(isinstance(a, str) for a in data):
            answers = data
        else:
            raise data_error(path, "is neither a dict answer -> id nor a list of answers",
                             "Give trainval_ans2label.json or trainval_label2ans.json")
        return cls(answers, str(path))

    @classmethod
    def from_questions(cls, questions: list[Question], min_count: int = 1) -> LabelSpace:
        """The normalised majority answers given at least ``min_count`` times, most frequent first."""
        from collections import Counter

        counts = Counter(normalize_answer(Counter(q.answers).most_common(1)[0][0]) for q in questions if q.answers)
        return cls([a for a, n in sorted(counts.items(), key=lambda t: (-t[1], t[0])) if n >= min_count])

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, answer: object) -> bool:
        return answer in self.index

    def targets(self, questions: list[Question], unknown: str = "drop", source: str = "") -> tuple[torch.Tensor, int]:
        """Soft-score targets ``[Q, A]`` and the number of questions none of whose answers is a label.

        ``unknown="error"``: a question whose human answers are all outside the label space is a
        :class:`DataError` naming the file (``source``), the question and its answers.
        """
        out = torch.zeros(len(questions), len(self))
        unanswerable = 0
        for row, question in enumerate(questions):
            scores = answer_scores(question.answers) if question.answers else {}
            hits = {self.index[a]: s for a, s in scores.items() if a in self.index}
            for label, score in hits.items():
                out[row, label] = score
            if question.answers and not hits:
                unanswerable += 1
                if unknown == "error":
                    raise data_error(source or "annotations", f"question {question.question_id} field 'answers': "
                                     f"none of {sorted(set(question.answers))} is in the label space "
                                     f"{self.source or ''} ({len(self)} answers)",
                                     "Use a label space that covers the data, or --unknown-answers drop")
        return out, unanswerable

    def check_answer(self, answer: str, where: str) -> int:
        """The label of ``answer`` (normalised); one outside the label space is a :class:`DataError`."""
        key = normalize_answer(answer)
        if key not in self.index:
            raise DataError(f"{where}: answer {answer!r} is not in the label space {self.source} ({len(self)} "
                            "answers). Give answers from the label space (trainval_label2ans.json)")
        return self.index[key]
