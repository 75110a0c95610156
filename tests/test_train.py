"""``python -m agents.train``: outputs, resumption after a kill, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from agents import train
from envs.checkpoint import load_checkpoint

TINY = ["--batch-size", "4", "--eval-every", "2", "--quiet", "--seed", "3"]


def _args(world, out, *extra):
    return ["r2r", "--data-dir", str(world), "--out", str(out), *TINY, *extra]


def test_backtranslate_run_writes_every_output(tiny_world, tmp_path):
    out = tmp_path / "run"
    code = train.main(_args(tiny_world, out, "--backtranslate", "--speaker-iters", "2", "--iters", "2",
                            "--bt-iters", "2", "--aug-paths-per-scan", "5"))
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["stages"] == ["speaker", "follower", "backtranslate"] and config["il_weight"] == 0.2
    for name in ("checkpoint.pt", "speaker_best.pt", "follower_best.pt", "scores.json",
                 "results/val_seen.json", "results/val_unseen.json", "results/test.json"):
        assert (out / name).exists(), name
    best = load_checkpoint(out / "follower_best.pt")  # weights_only=True
    assert "decoder.lstm.weight_ih" in best["model"]
    history = json.loads((out / "scores.json").read_text())["history"]
    assert [h["stage"] for h in history] == ["speaker", "follower", "backtranslate"]
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    results = json.loads((out / "results" / "val_unseen.json").read_text())
    assert {r["instr_id"] for r in results} == {e.instr_id for e in train.VLNVectorEnv(tiny_world, "val_unseen").episodes}


def test_backtranslation_never_replaces_a_better_follower(tiny_world, tmp_path, monkeypatch):
    """Stage 2 scores SR 0.5, back-translation 0.1 (a scorer stand-in): follower_best.pt stays stage 2's."""
    real_score = train.score

    def scripted(task, env, results):
        summary = real_score(task, env, results)
        summary["success"] = 0.1 if calls["bt"] else 0.5
        return summary

    calls = {"bt": False}
    real_enter = train.Trainer._enter

    def enter(self, stage):
        calls["bt"] = stage == "backtranslate"
        return real_enter(self, stage)

    monkeypatch.setattr(train, "score", scripted)
    monkeypatch.setattr(train.Trainer, "_enter", enter)
    out = tmp_path / "run"
    assert train.main(_args(tiny_world, out, "--backtranslate", "--speaker-iters", "2", "--iters", "2",
                            "--bt-iters", "2", "--aug-paths-per-scan", "5")) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert [h["val_unseen/success"] for h in scores["history"] if h["stage"] != "speaker"] == [0.5, 0.1]
    assert scores["best"]["follower"]["stage"] == "follower"
    assert load_checkpoint(out / "follower_best.pt")["score"]["stage"] == "follower"


def test_backtranslation_starts_fresh_optimisers_at_its_own_lr(tiny_world, tmp_path):
    """As EnvDrop's back-translation run: the follower's weights are loaded, not its optimiser state."""
    first = tmp_path / "first"
    assert train.main(_args(tiny_world, first, "--only", "follower", "--iters", "2", "--lr", "3e-4")) == 0
    bt = tmp_path / "bt"
    assert train.main(_args(tiny_world, bt, "--backtranslate", "--speaker-iters", "2", "--bt-iters", "2",
                            "--follower-checkpoint", str(first / "follower_best.pt"), "--aug-paths-per-scan", "5",
                            "--bt-lr", "2e-5")) == 0
    state = load_checkpoint(bt / "checkpoint.pt")
    assert {g["lr"] for o in state["follower_opt"].values() for g in o["param_groups"]} == {2e-5}
    # the speaker's Adam moments were dropped when its stage ended; its best checkpoint still holds them
    assert [o["state"] for o in state["speaker_opt"].values()] == [{}, {}]
    assert all(o["state"] for o in load_checkpoint(bt / "speaker_best.pt")["optimizers"].values())


def test_float16_feature_table_trains_on_the_same_float32_models(tiny_world, tmp_path, monkeypatch):
    """--feature-dtype float16: the envs hold a float16 table, the follower still trains in float32."""
    built = []
    original = train.VLNVectorEnv

    def spy(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(train, "VLNVectorEnv", spy)
    out = tmp_path / "half"
    assert train.main(_args(tiny_world, out, "--only", "follower", "--iters", "2", "--feature-dtype", "float16")) == 0
    assert built and all(env.feature_table.dtype == "float16" for env in built)
    assert json.loads((out / "config.json").read_text())["feature_dtype"] == "float16"
    weights = load_checkpoint(out / "checkpoint.pt")["follower"]
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())


def test_follower_training_continues_from_a_given_follower(tiny_world, tmp_path):
    """--only follower --follower-checkpoint: stage 1 starts from those weights (at --lr 0 they stay them), not
    from a fresh initialisation."""
    first = tmp_path / "first"
    assert train.main(_args(tiny_world, first, "--only", "follower", "--iters", "2")) == 0
    given = load_checkpoint(first / "follower_best.pt")["model"]
    again = tmp_path / "again"
    assert train.main(_args(tiny_world, again, "--only", "follower", "--iters", "2", "--lr", "0", "--seed", "4",
                            "--follower-checkpoint", str(first / "follower_best.pt"))) == 0
    kept = load_checkpoint(again / "checkpoint.pt")["follower"]
    assert kept.keys() == given.keys()
    assert all(torch.equal(kept[k], given[k]) for k in given)


def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_world, tmp_path, monkeypatch):
    base = ["--only", "follower", "--iters", "6"]
    assert train.main(_args(tiny_world, tmp_path / "straight", *base)) == 0

    original = train.Trainer._train_once
    calls = {"n": 0}

    def dies_at_five(self, stage):
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint at iteration 4
            raise KeyboardInterrupt("killed")
        return original(self, stage)

    monkeypatch.setattr(train.Trainer, "_train_once", dies_at_five)
    assert train.main(_args(tiny_world, tmp_path / "killed", *base)) == 130  # Ctrl-C: "error: interrupted"
    monkeypatch.setattr(train.Trainer, "_train_once", original)
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["iteration"] == 4
    assert train.main(_args(tiny_world, tmp_path / "killed", *base, "--resume")) == 0

    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["follower"]
    b = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["follower"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_errors_are_clear(tiny_world, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(_args(tiny_world, out, "--resume")) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert train.main(_args(tmp_path / "missing", out)) == 2
    assert "data directory not found" in capsys.readouterr().err
    assert train.main(_args(tiny_world, out, "--backtranslate", "--speaker-checkpoint", str(tmp_path / "no.pt"),
                            "--iters", "2", "--bt-iters", "2")) == 2
    assert "speaker checkpoint not found" in capsys.readouterr().err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--backtranslate", "--data-dir", "--features", "--iters", "--batch-size", "--out", "--seed",
                   "--device", "--resume", "--only", "--select-by"):
        assert option in text


@pytest.mark.slow
def test_follower_overfits_a_handful_of_world_episodes(tiny_world):
    """Through the real vector env and world features: 8 training episodes are learnt to SR 100%."""
    from agents.follower import Follower, FollowerConfig, make_follower_optimizers
    from agents.rollout import IterationConfig, evaluate_follower, train_follower_iteration

    torch.manual_seed(0)
    pool = train.VLNVectorEnv(tiny_world, "train").episodes[:8]
    env = train.VLNVectorEnv(tiny_world, "train", num_envs=8, seed=0, episodes=pool, metrics_in_info=False)
    follower = Follower(FollowerConfig(vocab_size=len(env.vocab), feature_dim=env.feature_dim, word_dim=64,
                                       hidden_dim=128, action_dim=32, dropout=0.0, feature_dropout=0.0))
    opts = make_follower_optimizers(follower, lr=3e-3)
    rates = []
    for i in range(150):
        train_follower_iteration(follower, opts, env, IterationConfig(il_weight=1.0))
        if i % 10 == 9 or i == 0:  # after the first update too: the starting point is well below 100%
            rates.append(train.score("r2r", env, evaluate_follower(follower, env))["success"])
            if rates[-1] == 1.0:
                break
    assert rates[0] < 1.0 and rates[-1] == 1.0, rates


def test_rxr_trains_one_language(tiny_world, tmp_path):
    out = tmp_path / "rxr"
    assert train.main(["rxr", "--data-dir", str(tiny_world), "--out", str(out), "--only", "follower", "--iters", "2",
                       "--languages", "hi", *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["languages"] == "hi" and config["il_weight"] == 0.4
    results = json.loads((out / "results" / "val_unseen.json").read_text())
    hindi = [e for e in train.VLNVectorEnv(tiny_world, "val_unseen", task="rxr", languages=["hi"]).episodes]
    assert {r["instr_id"] for r in results} == {e.instr_id for e in hindi}


def test_rxr_backtranslation_samples_its_paths_from_the_training_env(tiny_world, tmp_path, monkeypatch):
    """Back-translation on RxR (Hindi) in a data directory without R2R files: the augmented paths come from the
    training env's own scans and graphs, carry the model's language, and no other env is built."""
    data = tmp_path / "rxr_only"
    data.mkdir()
    for part in ("connectivity", "RxR", "features"):
        (data / part).symlink_to(tiny_world / part)
    built = []
    real_init = train.VLNVectorEnv.__init__

    def counting_init(self, data_dir, split, *args, **kwargs):
        built.append(split)
        real_init(self, data_dir, split, *args, **kwargs)

    monkeypatch.setattr(train.VLNVectorEnv, "__init__", counting_init)
    trainer_box = {}
    real_run = train.Trainer.run

    def run(self):
        trainer_box["trainer"] = self
        return real_run(self)

    monkeypatch.setattr(train.Trainer, "run", run)
    out = tmp_path / "run"
    assert train.main(["rxr", "--data-dir", str(data), "--out", str(out), "--languages", "hi", "--backtranslate",
                       "--speaker-iters", "2", "--iters", "2", "--bt-iters", "2", "--aug-paths-per-scan", "5",
                       *TINY]) == 0
    trainer = trainer_box["trainer"]
    aug = trainer.aug_sampler.episodes
    assert {ep.scan for ep in aug} == {ep.scan for ep in trainer.train_env.episodes}
    assert {ep.language for ep in aug} == {"hi-IN"} and all(ep.instruction == "" for ep in aug)
    assert built.count("train") == 1  # the augmented paths play in the training env itself
    assert json.loads((out / "config.json").read_text())["stages"] == ["speaker", "follower", "backtranslate"]


def test_details_and_the_evaluate_command(tiny_world, tmp_path, capsys):
    """--details writes the extended results beside the plain ones; agents.evaluate re-runs the saved follower
    and gives the same trajectories; a checkpoint of another kind is refused clearly."""
    from agents.evaluate import main as evaluate_main

    out = tmp_path / "run"
    assert train.main(_args(tiny_world, out, "--only", "follower", "--iters", "2", "--details")) == 0
    plain = json.loads((out / "results" / "val_unseen.json").read_text())
    details = json.loads((out / "results" / "val_unseen.details.json").read_text())
    assert plain[0].keys() == {"instr_id", "trajectory"}
    assert [d["instr_id"] for d in details] == [p["instr_id"] for p in plain]
    assert all(d["decisions"] and d["instruction_tokens"] for d in details)
    again = tmp_path / "again.json"
    assert evaluate_main(["--checkpoint", str(out / "follower_best.pt"), "--data-dir", str(tiny_world),
                          "--out", str(again), "--details"]) == 0
    assert json.loads(again.read_text()) == plain
    assert json.loads(tmp_path.joinpath("again.details.json").read_text())[0]["decisions"] == details[0]["decisions"]
    assert "success" in capsys.readouterr().out
    assert evaluate_main(["--checkpoint", str(out / "checkpoint.pt"), "--data-dir", str(tiny_world),
                          "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "is the training state of a navigation run" in err and "not a follower" in err and "Traceback" not in err


def test_rxr_one_model_per_language_and_a_joint_model(tiny_world, tmp_path):
    per_language = tmp_path / "per"
    assert train.main(["rxr", "--data-dir", str(tiny_world), "--out", str(per_language), "--only", "follower",
                       "--iters", "2", "--languages", "en,hi", *TINY]) == 0
    summary = json.loads((per_language / "summary.json").read_text())["val_unseen"]
    assert set(summary) == {"en", "hi", "average"}
    assert summary["average"]["ndtw"] == pytest.approx((summary["en"]["ndtw"] + summary["hi"]["ndtw"]) / 2)
    for group in ("en", "hi"):
        best = load_checkpoint(per_language / group / "follower_best.pt")
        assert best["languages"] == [group] and not best["joint"]
    joint = tmp_path / "joint"
    assert train.main(["rxr", "--data-dir", str(tiny_world), "--out", str(joint), "--only", "follower",
                       "--iters", "2", "--languages", "en,hi,te", "--joint", "--teacher", "path", "--reward", "ndtw",
                       *TINY]) == 0
    best = load_checkpoint(joint / "follower_best.pt")
    words = set(best["vocab"])
    assert best["joint"] and best["languages"] == ["en", "hi", "te"]
    assert any("\u0900" <= w[0] <= "\u097f" for w in words) and any("\u0c00" <= w[0] <= "\u0c7f" for w in words)
    assert "kitchen" in words
    record = json.loads((joint / "scores.json").read_text())["history"][-1]
    for group in ("en", "hi", "te", "average"):
        assert f"val_unseen/{group}/ndtw" in record
    config = json.loads((joint / "config.json").read_text())
    assert (config["teacher"], config["reward"], config["select_by"]) == ("path", "ndtw", "ndtw")


def test_rxr_language_errors(tiny_world, tmp_path, capsys):
    assert train.main(["rxr", "--data-dir", str(tiny_world), "--out", str(tmp_path / "x"), "--languages", "en,fr",
                       *TINY]) == 2
    err = capsys.readouterr().err
    assert "unknown language group(s) fr" in err and "Traceback" not in err
