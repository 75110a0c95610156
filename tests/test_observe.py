"""The agents read either observation mode alike: ``indices`` mode's features, gathered on the agent's device
(:mod:`agents.observe`), equal ``features`` mode's copies, so training and evaluation give the same numbers."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from agents import observe as observe_module
from agents.follower import Follower, FollowerConfig, make_follower_optimizers
from agents.observe import device_tables, observe
from agents.rollout import (RolloutRandom, evaluate_follower, train_follower_iteration, train_speaker_iteration)
from agents.speaker import Speaker, SpeakerConfig, make_speaker_optimizers
from envs.gym.vector_env import VLNVectorEnv

CPU = torch.device("cpu")


def _pair(data, split: str = "train", **options) -> tuple[VLNVectorEnv, VLNVectorEnv]:
    return tuple(VLNVectorEnv(data, split, num_envs=8, seed=3, metrics_in_info=False, observation_mode=mode,
                              **options) for mode in ("features", "indices"))


def _walk_and_compare(full: VLNVectorEnv, lean: VLNVectorEnv, steps: int) -> int:
    """Play the same random valid actions in both envs; at each step every slot's (including finished
    slots') views, candidates and action mask must be equal. Returns how many finished slots were compared."""
    rng = np.random.default_rng(0)
    (obs_f, _), (obs_i, _) = full.reset(), lean.reset()
    every, finished = np.arange(full.num_envs), 0
    for _ in range(steps):
        for a, b in zip(observe(full, obs_f, every, CPU), observe(lean, obs_i, every, CPU)):
            assert a.dtype == b.dtype and torch.equal(a, b)
        finished += int((~obs_f["action_mask"][:, 0]).sum())
        actions = np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in obs_f["action_mask"]])
        obs_f, *_ = full.step(actions)
        obs_i, *_ = lean.step(actions)
    return finished


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_indices_mode_gathers_what_features_mode_copies(tiny_world, dtype):
    finished = _walk_and_compare(*_pair(tiny_world, feature_dtype=dtype), steps=12)
    assert finished > 0  # finished slots (zeros in features mode) were compared too


def test_indices_mode_on_the_real_graphs(shared_data):
    """Real candidates: up to a dozen per viewpoint, padding, elevations other than 0."""
    from envs.kernel.navgraph import load_graphs

    class RandomFeatures:  # a feature file's protocol: its size, then rows filled in place
        def layout(self):
            return sum(len(g.ids) for g in load_graphs(shared_data / "connectivity").values()), 32

        def fill(self, keys, out):
            out[:] = np.random.default_rng(len(keys)).standard_normal(out.shape)

    features = RandomFeatures()
    full, lean = (VLNVectorEnv(shared_data, "val_seen", num_envs=16, seed=1, metrics_in_info=False,
                               features=features, observation_mode=mode) for mode in ("features", "indices"))
    assert _walk_and_compare(full, lean, steps=8) > 0


def test_training_and_evaluation_are_the_same_in_either_mode(tiny_world):
    """A follower iteration (IL + A2C with the step-limit bootstrap), a speaker iteration and a greedy
    evaluation give the same losses, weights and trajectories from either mode."""
    outcomes = []
    for env in _pair(tiny_world, max_steps=4):  # short episodes: some are cut off and bootstrapped
        torch.manual_seed(0)
        follower = Follower(FollowerConfig(vocab_size=len(env.vocab), feature_dim=env.feature_dim, hidden_dim=32,
                                           word_dim=16))
        speaker = Speaker(SpeakerConfig(vocab_size=len(env.vocab), feature_dim=env.feature_dim, hidden_dim=32,
                                        word_dim=16))
        f_opts, s_opts = make_follower_optimizers(follower), make_speaker_optimizers(speaker)
        random = RolloutRandom(0, env.num_envs)
        stats = [train_follower_iteration(follower, f_opts, env, random=random) for _ in range(2)]
        stats.append(train_speaker_iteration(speaker, s_opts, env))
        val = VLNVectorEnv(tiny_world, "val_seen", num_envs=8, shuffle=False, metrics_in_info=False,
                           observation_mode=env.observation_mode)
        outcomes.append((stats, follower.state_dict(), speaker.state_dict(), evaluate_follower(follower, val)))
    (stats_f, fw_f, sw_f, res_f), (stats_i, fw_i, sw_i, res_i) = outcomes
    assert any(s.get("sample/steps", 0) >= 4 for s in stats_f)  # the step limit was reached
    assert stats_f == stats_i
    for a, b in ((fw_f, fw_i), (sw_f, sw_i)):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert res_f == res_i


def test_device_tables_are_copied_once_per_store_and_device(tiny_world):
    """Off the CPU one copy is kept per feature store: shared by the splits of one source, copied again when
    a split adds rows, dropped with the store. (The meta device stands in for a GPU: it holds no data.)"""
    from envs.kernel.navgraph import load_graphs

    class Source:  # a feature file's protocol, a bank of its own: room for every panorama, filled as splits load
        def layout(self):
            return sum(len(g.ids) for g in load_graphs(tiny_world / "connectivity").values()), 8

        def fill(self, keys, out):
            out[:] = 1.0

    meta, source = torch.device("meta"), Source()
    train = VLNVectorEnv(tiny_world, "train", num_envs=2, observation_mode="indices", features=source)
    table, angles = device_tables(train, meta)
    assert table.device.type == "meta" and tuple(table.shape) == train.feature_table.shape
    assert tuple(angles.shape) == (12, 36, 128)
    assert device_tables(train, meta)[0] is table  # held, not copied again
    val = VLNVectorEnv(tiny_world, "val_unseen", num_envs=2, observation_mode="indices",
                       features=source)  # unseen houses: new rows
    grown = device_tables(val, meta)[0]
    assert len(grown) == len(val.feature_table) > len(table)
    assert device_tables(train, meta)[0] is grown  # the same store, more rows: one new copy for both splits

    class Env:  # a store of its own, which nothing else holds
        feature_table = np.ones((3, 36, 4), dtype=np.float32)
        view_angle_table = train.view_angle_table

    held = len(observe_module._TABLES)
    assert device_tables(Env, meta)[0].shape == (3, 36, 4) and len(observe_module._TABLES) == held + 1
    del Env
    gc.collect()
    assert len(observe_module._TABLES) == held  # the store is gone, and so is its copy
    cpu_table, _ = device_tables(train, CPU)
    assert len(observe_module._TABLES) == held  # on the CPU the env's own array is used, nothing is held
    assert np.shares_memory(cpu_table.numpy(), train.feature_table)
