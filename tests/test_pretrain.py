"""V&L pretraining (tasks.pretrain): the tokenizer, the transformer's visual tokens, the pretraining batch, the
commands end to end on a small world (pretrain -> finetune on each task, resume, clear errors), torchrun
against one process, and the real SNLI-VE and VQA v2 samples through fine-tuning and evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from features.encoders import load_encoder
from features.grid import extract_grid, list_images
from tasks.pretrain.__main__ import main
from tasks.pretrain.common import all_cells, per_image
from tasks.pretrain.data import load_corpus
from tasks.pretrain.model import Classifier, ViLConfig, ViLTransformer
from tasks.pretrain.pretrain import PretrainConfig, make_batch
from tasks.pretrain.text import MASK, PAD, SEP, encode, load_tokenizer, train_tokenizer
from tasks.vl.sources import ImageStore
from tasks.vqa.data import LabelSpace
from tasks.vqa.models import EndToEnd

TINY = ["--hidden", "32", "--layers", "1", "--heads", "2", "--threads", "1", "--quiet"]
TEXTS = ["a red chair in the kitchen", "what color is the sofa?", "is there a blue bed?",
         "a bedroom with a green lamp and a white table", "how many objects are there?"]


def test_tokenizer_is_a_function_of_its_texts_and_travels_as_text():
    first, second = train_tokenizer(TEXTS * 3, 200), train_tokenizer(TEXTS * 3, 200)
    assert first.to_str() == second.to_str()  # ids do not depend on the process's hash seed
    loaded = load_tokenizer(first.to_str())
    ids = encode(loaded, ["what color is the sofa?", "a " * 40], 12)
    assert ids.tolist() == encode(first, ["what color is the sofa?", "a " * 40], 12).tolist()
    assert ids[0, 0] == 2 and SEP in ids[0].tolist() and ids[0, -1] == PAD  # [CLS] ... [SEP] then padding
    assert ids[1, -1] == SEP and PAD not in ids[1].tolist()  # a long text is cut, keeping its [SEP]


def test_visual_tokens_carry_their_cell_not_their_order():
    """Visual tokens share one position slot: permuting the sampled cells permutes their states and leaves the
    text's and the pooled state unchanged; moving a feature to another cell changes the result."""
    torch.manual_seed(0)
    model = ViLTransformer(ViLConfig(vocab_size=50, feature_dim=8, hidden=16, layers=1, heads=2, dropout=0)).eval()
    grid = torch.randn(2, 9, 8)  # a 3 x 3 grid
    ids, mask = torch.tensor([[2, 7, 9, 3], [2, 8, 3, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    cells = torch.tensor([[0, 4, 8, 2], [1, 3, 5, 7]])
    perm = torch.tensor([2, 0, 3, 1])
    states, pooled = model(grid, cells, ids, mask)
    states_p, pooled_p = model(grid, cells[:, perm], ids, mask)
    assert torch.allclose(pooled, pooled_p, atol=1e-5) and torch.allclose(states[:, :4], states_p[:, :4], atol=1e-5)
    assert torch.allclose(states[:, 4:][:, perm], states_p[:, 4:], atol=1e-5)
    # the same feature in another cell is another token: its 2D position is part of it
    moved = grid.clone()
    moved[:, [0, 1]] = grid[:, [1, 0]]
    same_feature = model.visual_tokens(moved, torch.tensor([[0], [0]]))
    assert (same_feature - model.visual_tokens(grid, torch.tensor([[1], [1]]))).abs().max() > 0.05
    blind_states, _ = model(grid, cells[:, :0], ids, mask)
    assert blind_states.shape == (2, 4, 16)


def test_evaluation_through_the_tower_reads_each_image_once_with_the_same_answers(small_vl_world):
    """A model trained end to end is evaluated on each image's grid computed once, not once per text."""
    torch.manual_seed(0)
    encoder = load_encoder("RN50")
    store = ImageStore(small_vl_world / "vl" / "images", encoder)
    images = store.stack(sorted(store.files)[:2])  # [2, 3, 224, 224]
    net = Classifier(ViLConfig(vocab_size=50, feature_dim=2048, hidden=16, layers=1, heads=2, dropout=0), 3)
    model = EndToEnd(encoder, net).eval()
    rows, ids = torch.tensor([0, 1, 0, 1]), torch.tensor([[2, 7, 3], [2, 8, 3], [2, 9, 3], [2, 7, 3]])
    cells, mask = all_cells(4, 49), torch.ones(4, 3, dtype=torch.long)
    reader, grids = per_image(model, images, torch.device("cpu"))
    assert reader is net and grids.shape == (2, 49, 2048)
    with torch.no_grad():
        assert torch.allclose(reader(grids[rows], cells, ids, mask), model(images[rows], cells, ids, mask), atol=1e-4)


def test_pretraining_batches_mask_mismatch_and_sample_as_asked(small_vl_world):
    vl = small_vl_world / "vl"
    labels = LabelSpace.load(vl / "vqa" / "trainval_ans2label.json")
    corpus = load_corpus(vl, "train", labels)
    tokenizer = train_tokenizer(corpus.texts, 500)
    ids = encode(tokenizer, corpus.texts, 24)
    cfg = PretrainConfig(patches=20)
    idx = torch.arange(len(corpus))
    batch = make_batch(corpus, ids, idx, 49, cfg, tokenizer.get_vocab_size(), torch.Generator().manual_seed(0))
    assert batch.cells.shape == (len(idx), 20) and all(len(set(row.tolist())) == 20 for row in batch.cells)
    mismatched = (~batch.matched).nonzero().flatten()
    assert 0.3 < len(mismatched) / len(idx) < 0.7
    images_of = defaultdict(set)  # a caption's text -> the images it describes (templates repeat)
    for k in (~corpus.is_question).nonzero().flatten().tolist():
        images_of[tuple(ids[k].tolist())].add(int(corpus.rows[k]))
    for k in mismatched.tolist():  # a negative reads a caption of another image
        assert images_of[tuple(batch.ids[k].tolist())] - {int(corpus.rows[k])}
    masked = batch.labels != -100
    assert not masked[mismatched].any() and 0.08 < masked.sum() / (ids[batch.matched] > MASK).sum() < 0.22
    assert (batch.ids[masked] == MASK).float().mean() > 0.6  # 80% shown as [MASK]
    assert torch.equal(batch.qa, corpus.is_question & batch.matched)
    only_mlm = make_batch(corpus, ids, idx, 49, replace(cfg, objectives=["mlm"], patches=100),
                          tokenizer.get_vocab_size(), torch.Generator().manual_seed(0))
    assert only_mlm.matched.all() and not only_mlm.qa.any() and only_mlm.cells.shape[1] == 49


@pytest.fixture(scope="module")
def pretrained(small_vl_world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pretrain") / "run"
    assert main(["pretrain", "--data-dir", str(small_vl_world), "--iters", "4", "--eval-every", "2", "--batch-size",
                 "16", "--patches", "20", "--out", str(out), *TINY]) == 0
    return out


def test_pretraining_run_saves_what_finetuning_needs(pretrained):
    scores = json.loads((pretrained / "scores.json").read_text())
    assert [h["iteration"] for h in scores["history"]] == [2, 4]
    assert set(scores["best"]["val"]) == {"mlm", "itm", "qa"}
    state = torch.load(pretrained / "best.pt", weights_only=True)
    assert state["kind"] == "tasks.pretrain/pretrain" and state["model_config"]["hidden"] == 32
    assert load_tokenizer(state["tokenizer"]).get_vocab_size() == state["model_config"]["vocab_size"]


@pytest.mark.parametrize("task", ["vqa", "snli-ve", "gqa"])
def test_finetuning_starts_from_the_pretrained_backbone_and_scores_every_split(small_vl_world, pretrained,
                                                                                tmp_path, task):
    """At learning rate 0 the fine-tuned backbone is the pretrained one; each split is scored and answered."""
    out = tmp_path / task
    assert main(["finetune", "--task", task, "--pretrained", str(pretrained / "best.pt"), "--data-dir",
                 str(small_vl_world), "--iters", "2", "--eval-every", "1", "--lr", "0", "--batch-size", "8",
                 "--out", str(out), "--threads", "1", "--quiet"]) == 0
    before = torch.load(pretrained / "best.pt", weights_only=True)["model"]
    after = torch.load(out / "checkpoint.pt", weights_only=True)
    assert after["kind"] == f"tasks.pretrain/finetune-{task}"
    for key, value in after["model"].items():
        if key.startswith("backbone."):
            assert torch.equal(value, before[key]), key
    best = json.loads((out / "scores.json").read_text())["best"]
    assert {"val", "test"} <= set(best)
    for split in ("val", "test"):
        answers = json.loads((out / "results" / f"{split}.json").read_text())
        assert len(answers) == best[split]["count"] > 0
    if task == "snli-ve":
        assert set(best["val"]["perAnswerType"]) == {"entailment", "neutral", "contradiction"}
    if task == "gqa":  # one answer per question, exact match: every score is 0 or 100 per question
        assert json.loads((out / "config.json").read_text())["gqa_from_vqa"] is True


def test_interrupted_pretraining_resumes_exactly(small_vl_world, tmp_path, monkeypatch):
    args = ["pretrain", "--data-dir", str(small_vl_world), "--iters", "4", "--eval-every", "2", "--batch-size", "8",
            "--patches", "20", *TINY]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    from tasks.vl.run import Run

    save = Run.save

    def save_then_die(self, state):
        save(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "--out", str(tmp_path / "cut")])
    monkeypatch.setattr(Run, "save", save)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["iteration"] == 2
    assert main([*args, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    whole = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    resumed = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_bad_inputs_and_foreign_checkpoints_are_clear_errors(small_vl_world, pretrained, tmp_path, capsys):
    finetune = ["finetune", "--data-dir", str(small_vl_world), "--iters", "1", "--quiet"]
    assert main([*finetune, "--task", "vqa", "--out", str(tmp_path / "a"), "--pretrained",
                 str(tmp_path / "absent.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    foreign = tmp_path / "vqa_head.pt"
    torch.save({"model": {}, "head": {"head": "mcan"}}, foreign)  # what tasks.vqa train writes
    assert main([*finetune, "--task", "vqa", "--out", str(tmp_path / "b"), "--pretrained", str(foreign)]) == 2
    assert "is a VQA head (RUN/best.pt of tasks.vqa train), not a V&L pretraining checkpoint" in capsys.readouterr().err
    assert main([*finetune, "--task", "snli-ve", "--out", str(tmp_path / "c"), *TINY[:6]]) == 0
    capsys.readouterr()
    assert main([*finetune, "--task", "vqa", "--out", str(tmp_path / "d"), "--pretrained",
                 str(tmp_path / "c" / "best.pt")]) == 2  # a fine-tuned model is not a pretrained one
    error = capsys.readouterr().err
    assert "is a model fine-tuned on snli-ve (RUN/best.pt or RUN/checkpoint.pt of tasks.pretrain finetune --task " \
           "snli-ve), not a V&L pretraining checkpoint" in error
    assert main([*finetune, "--task", "vqa", "--out", str(tmp_path / "c"), "--resume"]) == 2  # another task's run
    assert "not a model fine-tuned on vqa" in capsys.readouterr().err
    assert main([*finetune, "--task", "snli-ve", "--out", str(tmp_path / "e"), "--train-file",
                 str(tmp_path / "absent.jsonl"), "--val-file", str(tmp_path / "absent.jsonl")]) == 2
    assert "SNLI-VE file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pretrain", "--objectives", "mlm", "captioning"])


def _losses(run: Path) -> dict[str, list[float]]:
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(glob.glob(str(run / "tb" / "*"))[0])
    events.Reload()
    return {tag: [s.value for s in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_two_torchrun_processes_give_the_one_process_loss_curve(small_vl_world, tmp_path):
    """The same global batch of 8 (sampling, masks and mismatches drawn per global batch), dropout off: every
    objective's loss over the first steps, and the evaluations, match one process to float tolerance."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                        "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = ["-m", "tasks.pretrain", "pretrain", "--data-dir", str(small_vl_world), "--iters", "5", "--eval-every", "5",
            "--batch-size", "8", "--patches", "20", "--dropout", "0", *TINY]
    for processes in (1, 2):
        launcher = [] if processes == 1 else ["-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
        subprocess.run([sys.executable, *launcher, *args, "--out", str(tmp_path / str(processes))], check=True,
                       env=env, timeout=600, capture_output=True)
    one, two = _losses(tmp_path / "1"), _losses(tmp_path / "2")
    assert {"losses/mlm", "losses/itm", "losses/qa", "eval/val/itm"} <= set(one)
    for tag in one:
        assert len(one[tag]) == len(two[tag]) > 0, tag
        assert two[tag] == pytest.approx(one[tag], rel=1e-4, abs=1e-5), tag
    assert json.loads((tmp_path / "2" / "config.json").read_text())["processes"] == 2


@pytest.mark.realdata
def test_real_snli_ve_sample_fine_tunes_through_the_clip_tower_and_evaluates(shared_data, tmp_path):
    sample = shared_data / "snli_ve_sample"
    out = tmp_path / "snli"
    assert main(["finetune", "--task", "snli-ve", "--train-file", str(sample / "sample_pairs.jsonl"), "--val-file",
                 str(sample / "sample_pairs.jsonl"), "--images", str(sample / "images"), "--finetune-encoder",
                 "--iters", "2", "--eval-every", "2", "--batch-size", "4", "--out", str(out), *TINY]) == 0
    best = json.loads((out / "scores.json").read_text())["best"]["val"]
    assert best["count"] == 16 and set(best["perAnswerType"]) == {"entailment", "neutral", "contradiction"}
    results = json.loads((out / "results" / "val.json").read_text())
    pairs = [json.loads(line)["pairID"] for line in (sample / "sample_pairs.jsonl").read_text().splitlines()]
    assert [r["pairID"] for r in results] == pairs
    assert {r["gold_label"] for r in results} <= {"entailment", "neutral", "contradiction"}


@pytest.mark.realdata
def test_real_vqa_sample_fine_tunes_on_stored_grids_with_the_3129_answers(shared_data, tmp_path):
    sample = shared_data / "vqa_v2_sample"
    torch.manual_seed(0)
    extract_grid(load_encoder("RN50"), list_images(sample / "images"), tmp_path / "grid.h5", {"encoder": "RN50"},
                 quiet=True)
    out = tmp_path / "vqa"
    files = ["--train-file", str(sample / "questions.json"), "--train-annotations", str(sample / "annotations.json")]
    assert main(["finetune", "--task", "vqa", *files, "--val-file", str(sample / "questions.json"),
                 "--val-annotations", str(sample / "annotations.json"), "--features", str(tmp_path / "grid.h5"),
                 "--label-space", str(shared_data / "vqa_v2_answer_vocab_clipvil" / "trainval_ans2label.json"),
                 "--iters", "3", "--eval-every", "3", "--batch-size", "3", "--out", str(out), *TINY]) == 0
    assert json.loads((out / "config.json").read_text())["classes"] == 3129
    best = json.loads((out / "scores.json").read_text())["best"]["val"]
    assert best["count"] == 3 and 0 <= best["overall"] <= 100
    answers = json.loads((out / "results" / "val.json").read_text())
    qids = [q["question_id"] for q in json.loads((sample / "questions.json").read_text())["questions"]]
    assert [a["question_id"] for a in answers] == qids
