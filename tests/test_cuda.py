"""The agents on a GPU: the same numbers as on the CPU, and a rollout step that waits for the device once.

These run only where CUDA is available (CI has no GPU; they were run on a lent H200, see the issue notes).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from agents.follower import Follower, FollowerConfig, make_follower_optimizers
from agents.observe import host_waits, observe
from agents.rollout import (RolloutRandom, follower_rollout, teacher_path_features, train_follower_iteration,
                            train_speaker_iteration)
from agents.speaker import Speaker, SpeakerConfig, make_speaker_optimizers
from envs.gym.vector_env import VLNVectorEnv

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
GPU, CPU = torch.device("cuda"), torch.device("cpu")


def _env(world, mode: str = "indices", **options) -> VLNVectorEnv:
    return VLNVectorEnv(world, "train", num_envs=16, seed=5, metrics_in_info=False, observation_mode=mode,
                        **options)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_observations_gathered_on_the_gpu_equal_the_cpus(tiny_world, dtype):
    env = _env(tiny_world, feature_dtype=dtype)
    obs, info = env.reset()
    every = np.arange(env.num_envs)
    for _ in range(6):
        for a, b in zip(observe(env, obs, every, GPU), observe(env, obs, every, CPU)):
            assert a.device.type == GPU.type and torch.equal(a.cpu(), b)
        obs, _, _, _, info = env.step(info["teacher_action"])


def _models(env: VLNVectorEnv, device: torch.device) -> tuple[Follower, Speaker]:
    torch.manual_seed(0)
    follower = Follower(FollowerConfig(vocab_size=len(env.vocab), feature_dim=env.feature_dim, dropout=0.0,
                                       feature_dropout=0.0)).to(device)
    speaker = Speaker(SpeakerConfig(vocab_size=len(env.vocab), feature_dim=env.feature_dim, dropout=0.0,
                                    feature_dropout=0.0)).to(device)
    return follower, speaker


def test_training_on_the_gpu_matches_the_cpu(tiny_world):
    """Without dropout, an imitation rollout gives the CPU's loss and gradients, and two follower iterations
    (IL and A2C) and a speaker iteration the CPU's losses, to float32 tolerance (cuDNN's TF32 off). Weights
    after the updates are not compared: RMSprop's first steps move a weight by about 10 x lr whatever the size
    of its gradient, so a gradient near 0, whose sign rounding can flip, moves it the other way by as much."""
    runs = []
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        for device in (CPU, GPU):
            env = _env(tiny_world)
            follower, speaker = _models(env, device)
            obs, info = env.reset()
            loss = follower_rollout(follower, env, obs, info, "teacher", il_weight=0.2).loss
            loss.backward()
            grads = {n: p.grad.cpu() for n, p in follower.named_parameters() if p.grad is not None}
            f_opts, s_opts = make_follower_optimizers(follower), make_speaker_optimizers(speaker)
            random = RolloutRandom(0, env.num_envs)  # the A2C rollout samples the same actions on either device
            stats = [train_follower_iteration(follower, f_opts, env, random=random) for _ in range(2)]
            stats.append(train_speaker_iteration(speaker, s_opts, env))
            runs.append((loss.item(), grads, stats))
    (cpu_loss, cpu_grads, cpu_stats), (gpu_loss, gpu_grads, gpu_stats) = runs
    assert gpu_loss == pytest.approx(cpu_loss, rel=1e-5)
    assert cpu_grads.keys() == gpu_grads.keys() and len(cpu_grads) > 10
    for name, g in cpu_grads.items():
        assert (gpu_grads[name] - g).norm() <= 1e-4 * g.norm() + 1e-7, name
    for a, b in zip(cpu_stats, gpu_stats):
        assert a.keys() == b.keys()
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-5), k


def test_a_rollout_waits_for_the_gpu_once_per_step(tiny_world):
    """A sampled A2C rollout waits for each step's actions and, once a rollout, for the instruction lengths (the
    encoder) and the loss's statistics; the speaker's teacher walk never waits, and a teacher-forced rollout
    only for its encoder and statistics."""
    env = _env(tiny_world)
    follower, speaker = _models(env, GPU)
    random = RolloutRandom(0, env.num_envs)
    random.start_rollout()
    obs, info = env.reset()
    waits, result = host_waits(lambda: follower_rollout(follower, env, obs, info, "sample", train_rl=True,
                                                    random=random))
    steps, action_line = int(result.stats["steps"]), max(waits, key=waits.get)
    assert steps >= 8 and waits[action_line] == steps, (steps, waits)  # the chosen actions, once a step
    assert all(n <= 2 for line, n in waits.items() if line != action_line), waits  # the rest once a rollout
    obs, info = env.reset()
    waits, _ = host_waits(lambda: teacher_path_features(env, obs, info, GPU))
    assert waits.total() == 0, waits
    obs, info = env.reset()
    waits, result = host_waits(lambda: follower_rollout(follower, env, obs, info, "teacher", il_weight=0.2))
    assert waits.total() <= 4, waits


def test_speaker_decoding_on_the_gpu_writes_the_compact_loops_words(tiny_world):
    env = _env(tiny_world)
    _, speaker = _models(env, GPU)
    obs, info = env.reset()
    img, act, lengths = teacher_path_features(env, obs, info, GPU)
    speaker.eval()
    with torch.no_grad():
        speaker.decoder.projection.weight.mul_(10.0)  # sharper words: rows end at various steps
        ctx, mask = speaker.encode(act, img, lengths)
        eos = env.vocab.eos_id
        written = [speaker.decode(ctx, mask, env.vocab.bos_id, eos, max_len=40, compact=c) for c in (True, False)]
    assert torch.equal(written[0], written[1])
