"""Rollouts, A2C returns, env dropout and the training iterations, on a tiny fake env with the batched env's API.

``FakeVLNEnv`` is a 3x3 grid house (4 m between neighbours, so only the goal itself is within 3 m) with random
image features; each episode starts at the centre and names its goal in the instruction, so a follower must
read the instruction to succeed. It follows ``envs.gym.vector_env.VLNVectorEnv``'s interface (obs keys, info keys,
no autoreset, EnvDrop's reward) and is also used by ``benchmarks/bench_train.py`` when asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.envdrop import apply_image_mask, draw_env_mask
from agents.follower import Follower, FollowerConfig, make_follower_optimizers
from agents.rollout import (IterationConfig, a2c_loss, backtranslation_iteration, discounted_returns,
                            evaluate_follower, evaluate_speaker, follower_rollout, teacher_path_features,
                            train_follower_iteration, train_speaker_iteration)
from agents.speaker import Speaker, SpeakerConfig, make_speaker_optimizers

ANGLE = 128


@dataclass
class FakeEpisode:
    instr_id: str
    path_id: int
    scan: str
    path: list
    heading: float
    instruction: str
    distance: float = 0.0


class FakeVocab:
    def __init__(self, words: list[str]) -> None:
        self.word_to_index = {w: i for i, w in enumerate(["<PAD>", "<UNK>", "<EOS>", "<BOS>"] + words)}
        self.pad_id = 0
        self.split = str.split

    def __len__(self) -> int:
        return len(self.word_to_index)

    def encode(self, text: str, length: int) -> np.ndarray:
        ids = [3] + [self.word_to_index.get(w, 1) for w in text.split()] + [2]
        return np.array(ids + [0] * (length - len(ids)), dtype=np.int64)


def _angles(heading: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    four = np.stack([np.sin(heading), np.cos(heading), np.sin(elevation), np.cos(elevation)], -1)
    return np.tile(four, ANGLE // 4).astype(np.float32)


class FakeVLNEnv:
    """3x3 grid, node n at (n % 3, n // 3) x 4 m; candidates are the grid neighbours in index order."""

    NAMES = ["south west", "south", "south east", "west", "centre", "east", "north west", "north", "north east"]

    def __init__(self, num_envs: int = 8, feature_dim: int = 16, max_steps: int = 6, seed: int = 0,
                 max_instr_len: int = 10, heading_obs: bool = False) -> None:
        rng = np.random.default_rng(seed)
        self.heading_obs = heading_obs  # also observe the agent's heading/elevation (EnvDrop's action input)
        self.num_envs, self.feature_dim, self.max_steps, self.L = num_envs, feature_dim, max_steps, max_instr_len
        self.pos = np.array([[n % 3, n // 3] for n in range(9)], dtype=np.float64) * 4.0
        self.nbrs = [[m for m in range(9) if abs(self.pos[m] - self.pos[n]).sum() == 4.0] for n in range(9)]
        self.max_candidates = max(len(v) for v in self.nbrs)
        hops = np.full((9, 9), 99)
        for n in range(9):
            for m in range(9):
                hops[n, m] = int(abs(self.pos[n] - self.pos[m]).sum() / 4)
        self.dist = hops * 4.0  # grid: shortest path = Manhattan distance
        self.images = rng.standard_normal((9, 36, feature_dim)).astype(np.float32)
        view_h = (np.arange(36) % 12) * math.pi / 6
        view_e = (np.arange(36) // 12 - 1) * math.pi / 6
        self.view_angles = _angles(view_h, view_e)
        words = sorted({w for name in self.NAMES for w in name.split()} | {"go", "to", "the"})
        self.vocab = FakeVocab(words)
        self.episodes = [FakeEpisode(f"{g}_0", g, "grid", [4, g], 0.0, f"go to the {self.NAMES[g]}",
                                     float(self.dist[4, g])) for g in range(9) if g != 4]
        self._order, self._cursor, self._rng = np.arange(len(self.episodes)), 10**9, rng

    def _pick(self, options: dict) -> list:
        if "episodes" in options:
            return list(options["episodes"])
        out = []
        while len(out) < self.num_envs:
            if self._cursor >= len(self._order):
                self._rng.shuffle(self._order)
                self._cursor = 0
            out.append(self.episodes[self._order[self._cursor]])
            self._cursor += 1
        return out

    def reset(self, *, seed=None, options=None):
        self.batch = self._pick(options or {})
        assert len(self.batch) == self.num_envs
        self.node = np.array([ep.path[0] for ep in self.batch])
        self.goal = np.array([ep.path[-1] for ep in self.batch])
        self.active = np.ones(self.num_envs, dtype=bool)
        self.steps = np.zeros(self.num_envs, dtype=int)
        self.instr = np.stack([self.vocab.encode(ep.instruction, self.L) for ep in self.batch])
        self.traj = [[[ep.path[0], 0.0, 0.0]] for ep in self.batch]
        return self._obs(), self._info()

    def _obs(self) -> dict:
        B, K, D = self.num_envs, self.max_candidates, self.feature_dim
        views = np.concatenate([self.images[self.node], np.broadcast_to(self.view_angles, (B, 36, ANGLE))], -1)
        cands = np.zeros((B, K, D + ANGLE), dtype=np.float32)
        mask = np.zeros((B, K + 1), dtype=bool)
        mask[:, 0] = True
        for b in range(B):
            for k, m in enumerate(self.nbrs[self.node[b]]):
                d = self.pos[m] - self.pos[self.node[b]]
                cands[b, k, :D] = self.images[m, 12]
                cands[b, k, D:] = _angles(np.array(math.atan2(d[0], d[1])), np.array(0.0))
                mask[b, k + 1] = self.active[b]
        obs = {"instruction": self.instr.copy(), "view_features": views.astype(np.float32),
               "candidate_features": cands, "action_mask": mask}
        if self.heading_obs:
            obs["heading"] = (self.node * 0.5).astype(np.float32)
            obs["elevation"] = np.zeros(B, dtype=np.float32)
        return obs

    def _teacher(self) -> np.ndarray:
        out = np.zeros(self.num_envs, dtype=np.int64)
        for b in range(self.num_envs):
            here, goal = self.node[b], self.goal[b]
            for k, m in enumerate(self.nbrs[here]):
                if self.dist[m, goal] < self.dist[here, goal]:
                    out[b] = k + 1
                    break
        return out

    def _info(self) -> dict:
        return {"teacher_action": self._teacher(), "distance": self.dist[self.node, self.goal].copy(),
                "active": self.active.copy(), "instr_id": [ep.instr_id for ep in self.batch]}

    def step(self, actions):
        actions = np.asarray(actions)
        B = self.num_envs
        reward = np.zeros(B, dtype=np.float32)
        terminated, truncated = np.zeros(B, dtype=bool), np.zeros(B, dtype=bool)
        for b in range(B):
            if not self.active[b]:
                continue
            before = self.dist[self.node[b], self.goal[b]]
            if actions[b] == 0:
                reward[b] = 2.0 if before < 3 else -2.0
                terminated[b] = True
            else:
                self.node[b] = self.nbrs[self.node[b]][actions[b] - 1]
                self.traj[b].append([self.node[b], 0.0, 0.0])
                after = self.dist[self.node[b], self.goal[b]]
                reward[b] = float(np.sign(before - after))
                self.steps[b] += 1
                truncated[b] = self.steps[b] >= self.max_steps
        self.active &= ~(terminated | truncated)
        return self._obs(), reward, terminated, truncated, self._info()

    def results(self) -> list[dict]:
        return [{"instr_id": ep.instr_id, "trajectory": t} for ep, t in zip(self.batch, self.traj)]

    def iter_batches(self):
        eps = self.episodes
        for s in range(0, len(eps), self.num_envs):
            chunk = eps[s:s + self.num_envs]
            yield {"episodes": chunk + [chunk[-1]] * (self.num_envs - len(chunk))}


def success_rate(env: FakeVLNEnv, results: list[dict]) -> float:
    goal = {ep.instr_id: ep.path[-1] for ep in env.episodes}
    return float(np.mean([env.dist[r["trajectory"][-1][0], goal[r["instr_id"]]] < 3 for r in results]))


def small_follower(env: FakeVLNEnv, **kw) -> Follower:
    cfg = dict(vocab_size=len(env.vocab), feature_dim=env.feature_dim, word_dim=32, hidden_dim=64,
               action_dim=16)
    cfg.update(kw)
    return Follower(FollowerConfig(**cfg))


# ---------------------------------------------------------------------------------------------------------
def test_discounted_returns_hand_example():
    # Two episodes, gamma 0.5: slot 0 moves +1, +1, stops +2; slot 1 moves -1, then is cut off (value 4).
    rewards = torch.tensor([[1.0, -1.0], [1.0, 0.0], [2.0, 0.0]])
    R = discounted_returns(rewards, torch.tensor([0.0, 4.0]), gamma=0.5)
    # slot 0: R2 = 2, R1 = 1 + 1 = 2, R0 = 1 + 1 = 2. slot 1: R2 = 0 + 2 = 2, R1 = 0 + 1 = 1, R0 = -1 + .5
    assert torch.allclose(R, torch.tensor([[2.0, -0.5], [2.0, 1.0], [2.0, 2.0]]))


def test_a2c_loss_hand_example():
    logp = torch.tensor([[math.log(0.5)], [math.log(0.25)]])
    ent = torch.tensor([[1.0], [2.0]])
    values = torch.tensor([[1.0], [0.5]])
    returns = torch.tensor([[2.0], [0.5]])
    masks = torch.tensor([[1.0], [0.0]])  # the second step happened after the episode ended
    loss, stats = a2c_loss(logp, ent, values, returns, masks)
    # one active step: -log(.5) * (2 - 1) + 0.5 * 1 - 0.01 * 1
    assert loss.item() == pytest.approx(math.log(2) + 0.5 - 0.01)
    assert stats["critic"] == pytest.approx(1.0)


def test_env_mask_shared_and_per_env():
    torch.manual_seed(0)
    shared = draw_env_mask(64, 0.4, batch_size=5)
    assert shared.shape == (1, 64)
    assert shared.unique().tolist() == pytest.approx([0.0, 1 / 0.6])
    per_env = draw_env_mask(64, 0.4, batch_size=5, per_env=True)
    assert per_env.shape == (5, 64) and not torch.equal(per_env[0], per_env[1])
    feats = torch.ones(5, 3, 36, 64 + ANGLE)  # (B, steps, views, D + angle)
    out = apply_image_mask(feats, shared, 64)
    assert torch.equal(out[..., 64:], feats[..., 64:])  # angle dims never dropped
    assert torch.equal(out[..., :64], shared.view(1, 1, 1, 64).expand(5, 3, 36, 64))  # same everywhere
    out = apply_image_mask(feats, per_env, 64)
    assert torch.equal(out[2, 1, 7, :64], per_env[2]) and torch.equal(out[2, 0, 0, :64], per_env[2])
    own = feats.clone()
    assert apply_image_mask(own, per_env, 64, inplace=True) is own and torch.equal(own, out)  # the same, no copy


def test_teacher_rollout_reaches_goals_and_il_loss():
    env = FakeVLNEnv()
    follower = small_follower(env)
    obs, info = env.reset()
    result = follower_rollout(follower, env, obs, info, "teacher", il_weight=0.2)
    assert success_rate(env, env.results()) == 1.0
    assert result.loss.item() > 0 and result.stats["steps"] == 3  # longest: two moves + STOP


def test_sampled_rollout_a2c_loss_backpropagates():
    torch.manual_seed(0)
    env = FakeVLNEnv(max_steps=3)
    follower = small_follower(env)
    obs, info = env.reset()
    result = follower_rollout(follower, env, obs, info, "sample", train_rl=True)
    result.loss.backward()
    grads = [p.grad for p in follower.critic.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert 0 < result.stats["active_steps"] <= env.num_envs * 4


def test_teacher_path_features():
    env = FakeVLNEnv()
    obs, info = env.reset()
    img, act, lengths = teacher_path_features(env, obs, info)
    hops = [int(env.dist[4, ep.path[-1]] / 4) for ep in env.batch]
    assert lengths.tolist() == [h + 1 for h in hops]  # moves + STOP
    assert img.shape == (8, max(hops) + 1, 36, env.feature_dim + ANGLE)
    for b, h in enumerate(hops):
        assert act[b, h].abs().sum() == 0  # STOP's feature is zeros
        assert act[b, 0, : env.feature_dim].abs().sum() > 0


@pytest.mark.slow
def test_follower_overfits_tiny_world():
    torch.manual_seed(0)
    env = FakeVLNEnv()
    follower = small_follower(env)
    opts = make_follower_optimizers(follower, lr=3e-3)
    cfg = IterationConfig(il_weight=1.0)
    rates = []
    for i in range(100):  # about 60 iterations (IL + A2C) reach 100%
        stats = train_follower_iteration(follower, opts, env, cfg)
        assert all(math.isfinite(v) for v in stats.values())
        if i % 10 == 9:
            rates.append(success_rate(env, evaluate_follower(follower, env)))
            if rates[-1] == 1.0:
                break
    assert rates[0] < 1.0 and rates[-1] == 1.0, rates


def test_speaker_and_backtranslation_iterations_run():
    torch.manual_seed(0)
    from envs.gym.vector_env import EpisodeSampler

    env = FakeVLNEnv()
    aug = EpisodeSampler(env.episodes[::-1], env.num_envs, seed=1)  # augmented paths, played in env
    speaker = Speaker(SpeakerConfig(vocab_size=len(env.vocab), feature_dim=env.feature_dim, word_dim=16,
                                    hidden_dim=32))
    s_opts = make_speaker_optimizers(speaker)
    stats = train_speaker_iteration(speaker, s_opts, env)
    assert stats["speaker/loss"] > 0
    scores = evaluate_speaker(speaker, env, max_len=6)
    assert len(scores["instructions"]) == len(env.episodes) and 0.0 <= scores["bleu"] <= 1.0
    follower = small_follower(env)
    before = [p.detach().clone() for p in follower.parameters()]
    stats = backtranslation_iteration(follower, make_follower_optimizers(follower), speaker, env, aug,
                                      IterationConfig(max_decode=8))
    assert {"real/teacher/il_loss", "aug/teacher/il_loss", "aug/sample/rl_loss"} <= set(stats)
    assert any(not torch.equal(a, b) for a, b in zip(before, follower.parameters()))


class _Unused:
    """An augmentation sampler that must not be asked for batches."""

    def next_batch(self):
        raise AssertionError("the augmented pass drew from the sampled paths")


@pytest.mark.parametrize("source", ["train-speaker", "train-human"])
def test_backtranslation_controls_play_training_paths(source, monkeypatch):
    """The controls play the env's own training batches under environmental dropout, with the speaker's
    instructions (train-speaker) or the human ones (train-human, the speaker never asked)."""
    import agents.rollout as rollout

    torch.manual_seed(0)
    env = FakeVLNEnv()
    speaker = Speaker(SpeakerConfig(vocab_size=len(env.vocab), feature_dim=env.feature_dim, word_dim=16,
                                    hidden_dim=32))
    calls, spoken = [], []
    real_rollout, real_speak = rollout.follower_rollout, rollout.speaker_instructions

    def rollout_spy(*args, **kwargs):
        calls.append((kwargs.get("instructions"), kwargs.get("env_mask")))
        return real_rollout(*args, **kwargs)

    def speak_spy(*args, **kwargs):
        spoken.append(real_speak(*args, **kwargs))
        return spoken[-1]

    monkeypatch.setattr(rollout, "follower_rollout", rollout_spy)
    monkeypatch.setattr(rollout, "speaker_instructions", speak_spy)
    follower = small_follower(env)
    stats = backtranslation_iteration(follower, make_follower_optimizers(follower), speaker, env, _Unused(),
                                      IterationConfig(max_decode=8, aug_source=source))
    assert {"aug/teacher/il_loss", "aug/sample/rl_loss"} <= set(stats)
    real, aug = calls[:2], calls[2:]
    assert all(i is None and m is None for i, m in real)  # the real pass: human words, feature dropout
    assert len(aug) == 2 and all(m is not None for _, m in aug)  # the augmented pass: env-dropped
    if source == "train-human":
        assert spoken == [] and all(i is None for i, _ in aug)
    else:
        assert len(spoken) == 2 and all(i is s for (i, _), s in zip(aug, spoken))


def test_evaluating_on_the_speakers_instructions_replays_each_batch_from_its_start(monkeypatch):
    """evaluate_follower(speaker=...) lets the speaker walk each batch's paths, then plays the same batch from
    its start on what the speaker wrote: a speaker that writes the human words gives the human results."""
    import agents.rollout as rollout

    torch.manual_seed(0)
    env = FakeVLNEnv()
    follower = small_follower(env)
    human = evaluate_follower(follower, env)
    written = []

    def echo(speaker, env, obs, info, env_mask, max_len=120):  # walks the paths as the speaker does
        words = torch.from_numpy(np.array(obs["instruction"]))
        teacher_path_features(env, obs, info)
        written.append(words)
        return words

    monkeypatch.setattr(rollout, "speaker_instructions", echo)
    spoken = evaluate_follower(follower, env, speaker=object())
    assert len(written) == len(list(env.iter_batches())) and spoken == human


@pytest.mark.parametrize("per_env", [False, True])
def test_env_dropped_rollout_with_heading_observations(per_env):
    torch.manual_seed(0)
    env = FakeVLNEnv(heading_obs=True, max_steps=3)
    follower = small_follower(env)
    mask = draw_env_mask(env.feature_dim, 0.4, env.num_envs, per_env=per_env)
    obs, info = env.reset()
    result = follower_rollout(follower, env, obs, info, "sample", train_rl=True, il_weight=0.6, env_mask=mask)
    result.loss.backward()
    assert math.isfinite(result.loss.item()) and result.stats["active_steps"] > env.num_envs


def test_augmented_paths_on_real_graph(shared_data):
    from agents.augment import as_r2r_records, augmentation_episodes
    from envs.kernel.navgraph import load_graph
    from envs.kernel.paths import hop_counts

    scan = "17DRP5sb8fy"
    graph = load_graph(shared_data / "connectivity", scan)
    hops = hop_counts(graph)
    i, j = graph.index[graph.included_ids[0]], graph.index[graph.included_ids[-1]]
    assert hops[i, j] == len(graph.shortest_path(graph.ids[i], graph.ids[j])) - 1
    episodes = augmentation_episodes({scan: graph}, [scan], max_paths_per_scan=50, seed=3)
    assert len(episodes) == 50
    for ep in episodes:
        assert 4 <= len(ep.path) - 1 <= 6 and ep.distance > 5.0 and ep.instruction == ""
        assert ep.distance == pytest.approx(graph.path_length(ep.path), abs=1e-5)
        assert ep.instr_id == f"{ep.path_id}_0"
    again = augmentation_episodes({scan: graph}, [scan], max_paths_per_scan=50, seed=3)
    assert as_r2r_records(again) == as_r2r_records(episodes)  # seeded


# The real batched env on a tiny built-in world --------------------------------------------------------------
@pytest.fixture
def world(request):
    pytest.importorskip("envs.gym.vector_env")
    try:
        return request.getfixturevalue("tiny_world")
    except pytest.FixtureLookupError:
        pytest.skip("no tiny_world fixture in this checkout")


@pytest.mark.slow
def test_real_env_training_evaluation_and_backtranslation(world, tmp_path):
    import json
    import shutil

    from agents.augment import as_r2r_records, augmentation_episodes
    from envs.gym.vector_env import EpisodeSampler, VLNVectorEnv
    from envs.kernel.paths import PathRule

    # A data directory beside the shared world, adding an augmentation split (R2R_aug_paths.json) that
    # loads as a split of its own.
    data = tmp_path / "data"
    data.mkdir()
    for part in Path(world).iterdir():
        if part.name != "R2R":
            (data / part.name).symlink_to(part)
    shutil.copytree(Path(world) / "R2R", data / "R2R")
    train = VLNVectorEnv(data, "train", num_envs=4, seed=0)
    scans = list(dict.fromkeys(ep.scan for ep in train.episodes))
    aug_episodes = augmentation_episodes(train.graphs, scans, rule=PathRule(2, 6, 0.0), max_paths_per_scan=8)
    (data / "R2R" / "R2R_aug_paths.json").write_text(json.dumps(as_r2r_records(aug_episodes)))
    assert len(VLNVectorEnv(data, "aug_paths", num_envs=4, seed=0).episodes) == len(aug_episodes)

    torch.manual_seed(0)
    env = train
    aug = EpisodeSampler(aug_episodes, 4, seed=0)
    val = VLNVectorEnv(data, "val_seen", num_envs=4, seed=0)
    cfg = dict(vocab_size=len(env.vocab), feature_dim=env.feature_dim, pad_id=env.vocab.pad_id)
    follower = Follower(FollowerConfig(word_dim=32, hidden_dim=64, action_dim=16, **cfg))
    speaker = Speaker(SpeakerConfig(word_dim=16, hidden_dim=32, **cfg))
    opts = make_follower_optimizers(follower)
    stats = train_follower_iteration(follower, opts, env)
    assert stats["teacher/il_loss"] > 0 and math.isfinite(stats["sample/rl_loss"])
    assert train_speaker_iteration(speaker, make_speaker_optimizers(speaker), env)["speaker/loss"] > 0
    stats = backtranslation_iteration(follower, opts, speaker, env, aug, IterationConfig(max_decode=10))
    assert math.isfinite(stats["aug/sample/rl_loss"])
    results = evaluate_follower(follower, val)
    by_id = {ep.instr_id: ep for ep in val.episodes}
    assert sorted(r["instr_id"] for r in results) == sorted(by_id)
    assert all(r["trajectory"][0][0] == by_id[r["instr_id"]].path[0] for r in results)
    bleu = evaluate_speaker(speaker, val, max_len=10)
    assert len(bleu["instructions"]) == len({ep.path_id for ep in val.episodes})
