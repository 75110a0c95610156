"""Captioning: data files and their errors, CIDEr-D rewards equal to pycocoevalcap's, beam search, the metrics
(with SPICE skipped cleanly where it cannot run), the commands, and the real SNLI-VE sample through the models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from envs.datadir import DataError
from features.encoders import load_encoder
from features.grid import grid_tokens, read_image
from tasks.captioning.__main__ import main as caption_main
from tasks.captioning.data import load_coco_references, load_karpathy, load_results
from tasks.captioning.metrics import CiderD, coco_scores, java_available, simple_tokenize, spice_ready
from tasks.captioning.model import Captioner, CaptionerConfig
from tasks.tokenize import Vocab
from tasks.vl.snli_ve import load_snli_ve
from tasks.vqa.models import VQAHeadConfig, make_head
from tasks.vqa.train import QUESTION_LEN




def test_cider_d_reward_matches_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider

    refs = {"1": ["a red sofa in a room", "a sofa that is red", "the living room has a red sofa"],
            "2": ["a kitchen with a white fridge", "a white fridge", "there is a fridge in the kitchen"],
            "3": ["a blue bed in a bedroom", "the bedroom has a bed", "a bed next to a lamp"]}
    res = {"1": ["a red sofa"], "2": ["a fridge in a kitchen"], "3": ["a green lamp"]}
    _, expected = Cider().compute_score(refs, res)
    ours = CiderD(list(refs.values()))
    assert [ours.score(res[k][0], refs[k]) for k in refs] == pytest.approx(list(expected))


def test_beam_search_and_sampling():
    torch.manual_seed(0)
    cfg = CaptionerConfig(vocab_size=12, feature_dim=16, d=32, layers=1, heads=2, max_len=7)
    model = Captioner(cfg).eval()
    grid = torch.randn(3, 4, 16)
    greedy, _ = model.sample(grid, greedy=True)
    beam1 = model.beam_search(grid, beam=1)
    assert torch.equal(beam1, greedy[:, : beam1.shape[1]])
    best = model.beam_search(grid, beam=5)
    assert best.shape[0] == 3 and best.shape[1] <= 6
    assert not torch.isin(best, torch.tensor([cfg.bos_id, cfg.unk_id])).any()
    words, total = model.sample(grid, n=4)
    assert words.shape[0] == 12 and total.shape == (12,) and (total <= 0).all()


def test_a_wide_beam_finds_the_most_probable_caption():
    """Two words, <EOS> and at most 3 steps: a beam of 9 keeps every prefix, so it must find the best of all
    3 + 9 + 27 captions, which brute force enumerates."""
    import itertools

    torch.manual_seed(1)
    cfg = CaptionerConfig(vocab_size=6, feature_dim=8, d=16, layers=1, heads=2, max_len=4)
    model = Captioner(cfg).eval()
    grid = torch.randn(1, 3, 8)
    memory = model.encode(grid)

    def logp(caption: tuple[int, ...]) -> float:
        prefix, total = [cfg.bos_id], 0.0
        for word in caption:
            with torch.no_grad():
                total += float(model._step(memory, torch.tensor([prefix]))[0, word])
            prefix.append(word)
        return total

    options = [4, 5, cfg.eos_id]
    captions = [c for n in (1, 2, 3) for c in itertools.product(options, repeat=n)
                if cfg.eos_id not in c[:-1] and (c[-1] == cfg.eos_id or n == 3)]
    best = max(captions, key=logp)
    found = tuple(int(w) for w in model.beam_search(grid, beam=9)[0] if int(w) != cfg.pad_id)
    assert found == best


def test_metrics_run_and_spice_is_skipped_with_a_message(capsys):
    refs = {"1": ["a red sofa in a room", "a sofa that is red"], "2": ["a white fridge", "a fridge in a kitchen"]}
    scores, skipped = coco_scores(refs, {"1": "a red sofa", "2": "a white fridge"})
    assert scores["BLEU-1"] > 0.5 and scores["CIDEr-D"] > 0 and 0 < scores["ROUGE-L"] <= 1
    ready, why = spice_ready()
    if ready:
        assert "SPICE" in scores
    else:
        assert skipped["SPICE"] == why and f"SPICE skipped: {why}" in capsys.readouterr().err
    assert ("METEOR" in scores) == java_available()
    assert simple_tokenize("A red sofa, in a Room.") == "a red sofa in a room"


def test_caption_files_and_their_errors(small_vl_world, tmp_path):
    vl = small_vl_world / "vl"
    refs = load_coco_references(vl / "captions" / "captions_val.json")
    good = [{"image_id": int(i), "caption": "a room"} for i in refs]
    (tmp_path / "good.json").write_text(json.dumps(good))
    assert set(load_results(tmp_path / "good.json", refs)) == set(refs)
    (tmp_path / "other.json").write_text(json.dumps(good + [{"image_id": 123456, "caption": "a room"}]))
    with pytest.raises(DataError, match=r"other.json: entry for image 123456 field 'image_id': the references"):
        load_results(tmp_path / "other.json", refs)
    (tmp_path / "short.json").write_text(json.dumps(good[1:]))
    with pytest.raises(DataError, match="has no caption for image"):
        load_results(tmp_path / "short.json", refs)
    data = json.loads((vl / "captions" / "dataset_world.json").read_text())
    del data["images"][2]["sentences"][1]["raw"]
    (tmp_path / "k.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"k.json: images\[2\]\.sentences\[1\] has no field 'raw'"):
        load_karpathy(tmp_path / "k.json")


def test_train_and_eval_commands(small_vl_world, tmp_path, capsys):
    out = tmp_path / "run"
    assert caption_main(["train", "--data-dir", str(small_vl_world), "--iters", "6", "--scst-iters", "2", "--eval-every",
                         "3", "--layers", "1", "--d", "32", "--batch-size", "16", "--scst-images", "4",
                         "--min-count", "1", "--beam", "2", "--out", str(out), "--quiet"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert [h["iteration"] for h in scores["history"]] == [3, 6, 8] and "CIDEr-D" in scores["nearest_neighbour"]
    results = json.loads((out / "results" / "val.json").read_text())
    assert results and set(results[0]) == {"image_id", "caption"}
    capsys.readouterr()
    assert caption_main(["eval", "--data-dir", str(small_vl_world), "--checkpoint", str(out / "best.pt"), "--split",
                         "val", "--beam", "2", "--out", str(tmp_path / "val.json"), "--json", "--metrics", "BLEU-4",
                         "ROUGE-L", "CIDEr-D", "SPICE"]) == 0  # METEOR: in test_metrics_run_and_spice_is_skipped...
    report = json.loads(capsys.readouterr().out)
    assert {"BLEU-4", "ROUGE-L", "CIDEr-D"} <= set(report["scores"])
    assert set(report["scores"]) | set(report["skipped"]) >= {"SPICE"}
    assert caption_main(["eval", "--data-dir", str(small_vl_world), "--results", str(tmp_path / "val.json"),
                         "--split", "test"]) == 2  # results for the val images against the test references
    assert "no such image" in capsys.readouterr().err
    assert caption_main(["eval", "--data-dir", str(small_vl_world), "--baseline", "nn", "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == len(results)


def test_real_snli_ve_sample_runs_through_the_models(shared_data):
    """The real SNLI-VE pairs load; their images go through RN50's grid into the captioner (beam 5) and both VQA
    heads (the hypothesis as the question)."""
    sample = shared_data / "snli_ve_sample"
    pairs = load_snli_ve(sample / "sample_pairs.jsonl")
    assert len(pairs) == 16 and {p.label for p in pairs} == {"entailment", "neutral", "contradiction"}
    torch.manual_seed(0)
    encoder = load_encoder("RN50")
    images = {p.image_id: grid_tokens(encoder.grid(read_image(sample / "images" / f"{p.image_id}.jpg"))).clone()
              for p in pairs}
    grid = torch.cat([images[p.image_id] for p in pairs])  # [16, 49, 2048]
    vocab = Vocab.build((p.hypothesis for p in pairs), min_count=1)
    captioner = Captioner(CaptionerConfig(vocab_size=len(vocab), feature_dim=2048, d=32, layers=1, heads=2,
                                          pad_id=vocab.pad_id, bos_id=vocab.bos_id, eos_id=vocab.eos_id,
                                          unk_id=vocab.unk_id))
    captions = captioner.beam_search(grid[:2], beam=5)
    assert captions.shape[0] == 2 and all(vocab.decode(row.tolist()) is not None for row in captions)
    words = torch.from_numpy(np.stack([vocab.encode(p.hypothesis, QUESTION_LEN) for p in pairs]))
    for head in ("pythia", "mcan"):
        model = make_head(VQAHeadConfig(head=head, vocab_size=len(vocab), num_answers=3, feature_dim=2048,
                                        hidden=32, joint_dim=32, layers=1, heads=2))
        assert model(grid, words).shape == (16, 3)
