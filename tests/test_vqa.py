"""VQA loaders, label space and targets, clear errors for bad input, both heads, and the commands
(train, resume, eval, zeroshot) on a small built-in world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.datadir import DataError
from features.encoders import load_encoder
from features.grid import GridFeatures, grid_tokens, read_image
from tasks.tokenize import Vocab
from tasks.vqa.__main__ import main as vqa_main
from tasks.vqa.data import LabelSpace, Question, load_gqa, load_vqa
from tasks.vqa.models import VQAHeadConfig, make_head
from tasks.vqa.train import QUESTION_LEN




# ------------------------------------------------------------------------------------------ loaders


def test_real_sample_and_label_space_load(shared_data):
    questions = load_vqa(shared_data / "vqa_v2_sample" / "questions.json",
                         shared_data / "vqa_v2_sample" / "annotations.json")
    assert [q.question_id for q in questions] == [458752000, 458752001, 458752002]
    assert questions[0].image_id == "458752" and len(questions[0].answers) == 10
    labels = LabelSpace.load(shared_data / "vqa_v2_answer_vocab_clipvil" / "trainval_ans2label.json")
    same = LabelSpace.load(shared_data / "vqa_v2_answer_vocab_clipvil" / "trainval_label2ans.json")
    assert len(labels) == 3129 and labels.answers == same.answers
    targets, unanswerable = labels.targets(questions)
    assert unanswerable == 0
    assert targets[0, labels.index["net"]] == 1.0 and targets[0, labels.index["orange"]] == pytest.approx(0.3)
    assert targets[2, labels.index["orange"]] == 1.0 and targets[2].sum() == 1.0


def test_gqa_balanced_files_load(tmp_path):
    path = tmp_path / "val_balanced_questions.json"
    path.write_text(json.dumps({
        "201": {"imageId": "n1", "question": "Is the cat black?", "answer": "yes", "fullAnswer": "Yes, it is.",
                "types": {"structural": "verify", "semantic": "attr", "detailed": "verifyAttr"}},
        "202": {"imageId": "n2", "question": "What is on the table?", "answer": "cup",
                "types": {"structural": "query", "semantic": "rel", "detailed": "relS"}}}))
    questions = load_gqa(path)
    assert [(q.question_id, q.image_id, q.answer_type, q.question_type) for q in questions] == [
        ("201", "n1", "yes/no", "verify"), ("202", "n2", "other", "query")]
    from tasks.vqa.accuracy import vqa_accuracy

    assert vqa_accuracy("Cup", questions[1].answers) == 1.0 and vqa_accuracy("mug", questions[1].answers) == 0.0


# ------------------------------------------------------------------------------------------- errors


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_malformed_annotation_file_names_file_entry_and_field(tmp_path, shared_data):
    questions = shared_data / "vqa_v2_sample" / "questions.json"
    data = json.loads((shared_data / "vqa_v2_sample" / "annotations.json").read_text())
    del data["annotations"][1]["answers"][3]["answer"]
    bad = _write(tmp_path / "annotations.json", data)
    with pytest.raises(DataError, match=r"annotations\.json: annotations\[1\]\.answers\[3\] has no field 'answer'"):
        load_vqa(questions, bad)
    data = json.loads((shared_data / "vqa_v2_sample" / "annotations.json").read_text())
    data["annotations"][0]["question_id"] = 1
    other = _write(tmp_path / "other.json", data)
    with pytest.raises(DataError, match="has no annotation for question 458752000"):
        load_vqa(questions, other)
    (tmp_path / "broken.json").write_text("{\"annotations\": [")
    with pytest.raises(DataError, match="broken.json: not valid JSON"):
        load_vqa(questions, tmp_path / "broken.json")


def test_answer_outside_the_label_space(tmp_path):
    labels = LabelSpace(["yes", "no", "2"], source="labels.json")
    question = Question(7, "1", "What is it?", answers=["giraffe"] * 10)
    targets, unanswerable = labels.targets([question])
    assert unanswerable == 1 and targets.sum() == 0  # dropped, as LXMERT does
    with pytest.raises(DataError, match=r"train.json: question 7 field 'answers': none of \['giraffe'\] is in the "
                                        r"label space labels.json \(3 answers\)"):
        labels.targets([question], unknown="error", source="train.json")
    assert labels.check_answer("Two", "results.json entry 0") == 2
    with pytest.raises(DataError, match="results.json entry 3: answer 'giraffe' is not in the label space"):
        labels.check_answer("giraffe", "results.json entry 3")


def test_question_whose_image_is_missing(small_vl_world, tmp_path):
    vl = small_vl_world / "vl"
    data = json.loads((vl / "vqa" / "val_questions.json").read_text())
    data["questions"][0]["image_id"] = 999999
    questions = _write(tmp_path / "q.json", data)
    code = vqa_main(["zeroshot", "--data-dir", str(small_vl_world), "--questions", str(questions), "--max-questions", "2"])
    assert code == 2
    with GridFeatures(vl / "grid-rn50.h5") as grid, pytest.raises(DataError, match="no grid features for .* 999999"):
        grid.stack(["1", "999999"], "a question of q.json")


# -------------------------------------------------------------------------------------------- heads


@pytest.mark.parametrize("head", ["pythia", "mcan"])
def test_heads_answer_the_real_sample(head, shared_data):
    """The real sample's image through RN50's grid and each head: logits over the 3,129 answers."""
    questions = load_vqa(shared_data / "vqa_v2_sample" / "questions.json",
                         shared_data / "vqa_v2_sample" / "annotations.json")
    labels = LabelSpace.load(shared_data / "vqa_v2_answer_vocab_clipvil" / "trainval_ans2label.json")
    torch.manual_seed(0)
    encoder = load_encoder("RN50")
    image = read_image(shared_data / "vqa_v2_sample" / "images" / "COCO_train2014_000000458752.jpg")
    grid = grid_tokens(encoder.grid(image)).clone()  # [1, 49, 2048] (out of inference mode)
    vocab = Vocab.build((q.question for q in questions), min_count=1)
    words = torch.from_numpy(np.stack([vocab.encode(q.question, QUESTION_LEN) for q in questions]))
    model = make_head(VQAHeadConfig(head=head, vocab_size=len(vocab), num_answers=len(labels), feature_dim=2048,
                                    hidden=64, joint_dim=64, layers=1, heads=2))
    logits = model(grid.expand(3, -1, -1), words)
    assert logits.shape == (3, 3129) and torch.isfinite(logits).all()
    targets, _ = labels.targets(questions)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------- commands


def test_train_resume_eval_and_zeroshot_commands(small_vl_world, tmp_path, capsys):
    common = ["--data-dir", str(small_vl_world), "--head", "mcan", "--layers", "1", "--hidden", "32", "--joint-dim", "32",
              "--batch-size", "16", "--eval-every", "4", "--quiet"]
    straight = tmp_path / "straight"
    assert vqa_main(["train", *common, "--iters", "8", "--out", str(straight)]) == 0
    split = tmp_path / "split"
    assert vqa_main(["train", *common, "--iters", "4", "--out", str(split)]) == 0
    assert vqa_main(["train", *common, "--iters", "4", "--out", str(split)]) == 2  # a run lives there
    assert "pass --resume" in capsys.readouterr().err
    assert vqa_main(["train", *common, "--iters", "8", "--out", str(split), "--resume"]) == 0
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(split / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed run must continue exactly"
    config = json.loads((straight / "config.json").read_text())
    assert config["head"] == "mcan" and config["answers"] > 10
    results = json.loads((straight / "results" / "val.json").read_text())
    assert results and set(results[0]) == {"question_id", "answer"}
    assert list((straight / "tb").iterdir())

    capsys.readouterr()
    assert vqa_main(["eval", "--data-dir", str(small_vl_world), "--checkpoint", str(straight / "best.pt"),
                     "--out", str(tmp_path / "answers.json"), "--json"]) == 0
    from_head = json.loads(capsys.readouterr().out)
    assert vqa_main(["eval", "--data-dir", str(small_vl_world), "--results", str(tmp_path / "answers.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == from_head
    assert set(from_head["perAnswerType"]) == {"yes/no", "number", "other"}
    # a results file for another split's questions
    assert vqa_main(["eval", "--data-dir", str(small_vl_world), "--split", "test", "--results",
                     str(tmp_path / "answers.json")]) == 2
    assert "the annotations do not hold" in capsys.readouterr().err

    assert vqa_main(["zeroshot", "--data-dir", str(small_vl_world), "--max-questions", "6", "--json"]) == 0
    zero = json.loads(capsys.readouterr().out)
    assert zero["count"] == 6 and 0 <= zero["overall"] <= 100


def test_zeroshot_on_the_real_sample(shared_data, tmp_path, capsys):
    labels = _write(tmp_path / "labels.json", ["net", "pitcher", "orange", "catcher", "yes", "2"])
    sample = shared_data / "vqa_v2_sample"
    assert vqa_main(["zeroshot", "--questions", str(sample / "questions.json"), "--annotations",
                     str(sample / "annotations.json"), "--images", str(sample / "images"), "--label-space",
                     str(labels), "--out", str(tmp_path / "zs.json"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 3
    answers = json.loads((tmp_path / "zs.json").read_text())
    assert {a["answer"] for a in answers} <= {"net", "pitcher", "orange", "catcher", "yes", "2"}


def test_training_on_gqa_files(small_vl_world, tmp_path):
    """GQA balanced files train through the same command; without a label space file, the training answers."""
    vl = small_vl_world / "vl"
    for split in ("train", "val"):
        questions = load_vqa(vl / "vqa" / f"{split}_questions.json", vl / "vqa" / f"{split}_annotations.json")
        _write(tmp_path / f"{split}_balanced_questions.json", {
            str(q.question_id): {"imageId": q.image_id, "question": q.question, "answer": q.answers[0],
                                 "types": {"structural": "query"}} for q in questions})
    out = tmp_path / "gqa"
    assert vqa_main(["train", "--dataset", "gqa", "--train-questions", str(tmp_path / "train_balanced_questions.json"),
                     "--val-questions", str(tmp_path / "val_balanced_questions.json"), "--features",
                     str(vl / "grid-rn50.h5"), "--head", "pythia", "--hidden", "16", "--joint-dim", "16",
                     "--iters", "2", "--eval-every", "2", "--out", str(out), "--quiet"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["best"]["val"]["perQuestionType"].keys() == {"query"}
    assert json.loads((out / "config.json").read_text())["label_space_file"] is None


def test_training_end_to_end_through_the_encoder(small_vl_world, tmp_path, capsys):
    """--finetune-encoder: the head trains through RN50's tower on the images; the tower's weights change and
    the evaluation rebuilds the same model from the checkpoint."""
    out = tmp_path / "e2e"
    assert vqa_main(["train", "--data-dir", str(small_vl_world), "--finetune-encoder", "--head", "pythia", "--hidden",
                     "16", "--joint-dim", "16", "--iters", "2", "--eval-every", "2", "--batch-size", "4",
                     "--encoder-lr", "1e-3", "--out", str(out), "--quiet"]) == 0
    state = torch.load(out / "best.pt", weights_only=True)
    assert state["end_to_end"] == "RN50"
    torch.manual_seed(0)
    fresh = load_encoder("RN50").visual.state_dict()
    assert not torch.equal(state["model"]["visual.layer4.0.conv1.weight"], fresh["layer4.0.conv1.weight"])
    capsys.readouterr()
    assert vqa_main(["eval", "--data-dir", str(small_vl_world), "--checkpoint", str(out / "best.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((out / "scores.json").read_text())["best"]["val"]


def test_question_only_head_needs_no_features(small_vl_world, tmp_path, capsys):
    out = tmp_path / "q"
    assert vqa_main(["train", "--data-dir", str(small_vl_world), "--head", "question-only", "--features",
                     str(tmp_path / "absent.h5"), "--hidden", "16", "--joint-dim", "16", "--iters", "2",
                     "--eval-every", "2", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert vqa_main(["eval", "--data-dir", str(small_vl_world), "--checkpoint", str(out / "best.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] > 0
