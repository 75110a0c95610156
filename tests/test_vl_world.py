"""The built-in world's V&L data: real formats, answers true of the rendered views, the answer prior, and
navigation files untouched by it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from envs.world import WorldConfig, build_world
from envs.world.vl import VLConfig
from tasks.captioning.data import load_coco_references, load_karpathy, split_images
from tasks.vl.snli_ve import load_snli_ve
from tasks.vqa.accuracy import vqa_accuracy
from tasks.vqa.data import LabelSpace, load_vqa

SMALL = dict(houses_seen=2, houses_unseen=1, houses_test=1, paths_per_house=8, eval_paths_per_house=4,
             image_size=32, workers=1, feature_dim=64)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vlw") / "world"
    build_world(out, WorldConfig(**SMALL), vl=VLConfig(vl_max_images=80))
    return out


def test_vqa_files_are_vqa_v2(world):
    vl = world / "vl"
    manifest = json.loads((vl / "vl.json").read_text())
    assert sum(manifest["images"].values()) == 80 and set(manifest["images"]) == {"train", "val", "test"}
    raw = json.loads((vl / "vqa" / "train_annotations.json").read_text())
    assert raw["data_subtype"] == "train" and raw["task_type"] == "Open-Ended"
    ann = raw["annotations"][0]
    assert set(ann) == {"question_id", "image_id", "question_type", "answer_type", "multiple_choice_answer", "answers"}
    assert len(ann["answers"]) == 10 and set(ann["answers"][0]) == {"answer", "answer_confidence", "answer_id"}
    questions = load_vqa(vl / "vqa" / "train_questions.json", vl / "vqa" / "train_annotations.json")
    assert {q.question_type for q in questions} >= {"what room is", "what color is the", "how many", "is there a"}
    assert {q.answer_type for q in questions} == {"yes/no", "number", "other"}
    labels = LabelSpace.load(vl / "vqa" / "trainval_ans2label.json")
    assert "yes" in labels and "kitchen" in labels or "bedroom" in labels
    # every training question has its majority answer in the label space, which scores high
    targets, unanswerable = labels.targets(questions)
    assert unanswerable == 0 and (targets.max(1).values >= 0.9).float().mean() > 0.95


def test_answers_are_true_of_the_views(world):
    """Room, colour, count and presence answers agree with what the view records hold (from the same rays as
    the rendered pixels), and the images are the rendered views."""
    vl = world / "vl"
    records = {im["cocoid"]: im for im in json.loads((vl / "captions" / "dataset_world.json").read_text())["images"]}
    questions = load_vqa(vl / "vqa" / "val_questions.json", vl / "vqa" / "val_annotations.json")
    checked = Counter()
    for q in questions:
        record = records[int(q.image_id)]
        names = {f"{o['colour']} {o['kind']}" for o in record["objects"]}
        truth = None
        if q.question_type == "what room is":
            truth = record["room"]
        elif q.question_type == "how many":
            truth = str(len(record["objects"]))
        elif q.question_type == "what color is the":
            kind = q.question.removeprefix("What color is the ").rstrip("?")
            truth = next(o["colour"] for o in record["objects"] if o["kind"] == kind)
        elif q.question_type == "is there a":
            truth = "yes" if q.question.removeprefix("Is there a ").rstrip("?") in names else "no"
        if truth is not None:
            checked[q.question_type] += 1
            assert vqa_accuracy(truth, q.answers) >= 0.9, (q.question, q.answers, record)
    assert min(checked.values()) >= 5
    image = Image.open(vl / "images" / records[min(records)]["filename"])
    assert image.size == (96, 96) and np.asarray(image).std() > 10


def test_presence_questions_carry_a_prior(world):
    questions = load_vqa(world / "vl" / "vqa" / "train_questions.json", world / "vl" / "vqa" / "train_annotations.json")
    yes = Counter(Counter(q.answers).most_common(1)[0][0] for q in questions if q.answer_type == "yes/no")
    assert yes["yes"] > yes["no"] > 0


def test_captions_and_entailment_files(world):
    vl = world / "vl"
    images = load_karpathy(vl / "captions" / "dataset_world.json")
    assert all(len(im.captions) == 5 for im in images)
    assert {im.split for im in images} == {"train", "val", "test"}
    refs = load_coco_references(vl / "captions" / "captions_test.json")
    assert set(refs) == {im.image_id for im in split_images(images, "test")}
    pairs = load_snli_ve(vl / "snli_ve" / "snli_ve_dev.jsonl")
    assert Counter(p.label for p in pairs) == {label: len(split_images(images, "val"))
                                               for label in ("entailment", "neutral", "contradiction")}


def test_navigation_files_do_not_depend_on_the_vl_data(tmp_path, world):
    """The V&L folder is extra: the same world without it has byte-identical navigation files."""
    plain = tmp_path / "plain"
    build_world(plain, WorldConfig(**SMALL), vl=VLConfig(vl=False))
    assert not (plain / "vl").exists()
    files = [p.relative_to(plain) for p in plain.rglob("*") if p.is_file()]
    assert len(files) > 20
    for rel in files:
        assert (plain / rel).read_bytes() == (world / rel).read_bytes(), rel
