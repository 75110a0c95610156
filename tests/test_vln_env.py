"""The Gymnasium env and the batched vector env: API conformance, shared semantics, teacher, errors."""

from __future__ import annotations

import json
import shutil
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the env ids)
from envs.datadir import DataError
from envs.gym.vector_env import VLNVectorEnv


def _check_quietly(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env must pass with no warnings
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id,split", [("VLN-R2R-v0", "val_seen"), ("VLN-RxR-v0", "val_unseen")])
def test_check_env_passes_without_warnings(tiny_world, env_id, split):
    env = gym.make(env_id, data_dir=tiny_world, split=split)
    _check_quietly(env)
    obs, info = env.reset(seed=0)
    assert obs["view_features"].shape[0] == 36
    assert "teacher_action" in info
    text = env.unwrapped._text()
    assert "instruction:" in text


def test_time_limit_truncates_at_35_and_reports_metrics(tiny_world):
    env = gym.make("VLN-R2R-v0", data_dir=tiny_world, split="val_seen")
    obs, info = env.reset(seed=1)
    for t in range(100):
        mask = obs["action_mask"]
        # oscillate between the first candidate and back: never STOP
        action = 1 if mask[1] else 0
        obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert truncated and not terminated and t == 34
    assert set(info["metrics"]) >= {"nav_error", "success", "spl", "ndtw"}
    assert info["result"]["trajectory"][0][0] == env.unwrapped.state.episodes[0].path[0]


def test_masked_action_does_not_crash(tiny_world):
    env = gym.make("VLN-R2R-v0", data_dir=tiny_world, split="val_seen")
    obs, _ = env.reset(seed=2)
    invalid = int(np.flatnonzero(obs["action_mask"] == 0)[0]) if (obs["action_mask"] == 0).any() else 10_000
    _, reward, terminated, _, info = env.step(invalid)
    assert terminated and reward in (-2.0, 2.0) and "metrics" in info


def _teacher_rollout(env: VLNVectorEnv, options=None):
    obs, info = env.reset(options=options)
    for _ in range(env.max_steps):
        obs, reward, term, trunc, info = env.step(info["teacher_action"])
        if not info["active"].any():
            break
    return info


def test_teacher_reaches_every_goal_and_random_does_not(tiny_world):
    env = VLNVectorEnv(tiny_world, "val_unseen", num_envs=16, seed=0)
    sr_teacher, sr_random = [], []
    rng = np.random.default_rng(0)
    for options in env.iter_batches():
        _teacher_rollout(env, options)
        n = options["count"]
        sr_teacher += [m["success"] for m in env.metrics()[:n]]
        assert all(m["nav_error"] == 0 for m in env.metrics()[:n])
        obs, info = env.reset(options=options)
        for _ in range(env.max_steps):
            mask = obs["action_mask"]
            logits = rng.random(mask.shape) + 10 * mask[:, 1:].any(1, keepdims=True) * np.pad(mask[:, 1:], ((0, 0), (1, 0)))
            obs, _, _, _, info = env.step(logits.argmax(1))
            if not info["active"].any():
                break
        metrics = [env.state.episode_metrics(i) for i in range(n)]
        sr_random += [m["success"] for m in metrics]
    assert np.mean(sr_teacher) == 1.0
    assert np.mean(sr_random) < 0.5


def test_vector_env_matches_single_env_step_by_step(tiny_world):
    vec = VLNVectorEnv(tiny_world, "val_seen", num_envs=4, seed=0)
    singles = [gym.make("VLN-R2R-v0", data_dir=tiny_world, split="val_seen").unwrapped for _ in range(4)]
    ids = [ep.instr_id for ep in vec.episodes[:4]]
    obs_v, info_v = vec.reset(options={"instr_ids": ids})
    obs_s = [env.reset(options={"instr_id": i})[0] for env, i in zip(singles, ids)]
    done = [False] * 4
    rng = np.random.default_rng(5)
    for t in range(12):
        for i, obs in enumerate(obs_s):
            if done[i]:
                continue
            for key in ("instruction", "view_features", "candidate_features"):
                np.testing.assert_array_equal(obs[key], obs_v[key][i], err_msg=f"{key} step {t} env {i}")
            np.testing.assert_array_equal(obs["action_mask"].astype(bool), obs_v["action_mask"][i])
        valid = obs_v["action_mask"]
        # mostly moves, sometimes STOP
        actions = np.array([0 if rng.random() < 0.1 or not valid[i, 1:].any()
                            else rng.choice(np.flatnonzero(valid[i, 1:])) + 1 for i in range(4)])
        obs_v, rew_v, term_v, trunc_v, info_v = vec.step(actions)
        for i, env in enumerate(singles):
            if done[i]:
                continue
            obs_s[i], r, term, trunc, info = env.step(int(actions[i]))
            assert r == rew_v[i] and term == term_v[i]
            assert info["viewpoint"] == info_v["viewpoint"][i]
            assert info["teacher_action"] == info_v["teacher_action"][i]
            if term:
                assert info["metrics"] == info_v["metrics"][i]
                done[i] = True
    for i, env in enumerate(singles):
        assert env.state.result(0) == vec.results()[i]


def test_random_fuzz_100k_agent_steps(tiny_world):
    env = VLNVectorEnv(tiny_world, "train", num_envs=64, seed=3)
    rng = np.random.default_rng(3)
    steps = 0
    while steps < 100_000:
        obs, info = env.reset()
        for _ in range(env.max_steps):
            # any integer, valid or not: invalid ones act as STOP, finished slots ignore theirs
            actions = rng.integers(-1, env.max_candidates + 3, size=64)
            obs, reward, term, trunc, info = env.step(actions)
            steps += int(info["active"].sum()) + int((term | trunc).sum())
            assert np.isfinite(obs["view_features"]).all()
            if not info["active"].any():
                break


def test_blind_features_are_zero(tiny_world):
    env = VLNVectorEnv(tiny_world, "val_seen", features="none", num_envs=2)
    obs, _ = env.reset()
    d = env.feature_dim
    assert not obs["view_features"][..., :d].any()
    assert obs["view_features"][..., d:].any()  # angle features stay


def test_missing_pieces_are_named(tmp_path, tiny_world):
    with pytest.raises(DataError, match="data directory not found"):
        VLNVectorEnv(tmp_path / "nope", "train")
    (tmp_path / "connectivity").mkdir()
    with pytest.raises(DataError, match=r"R2R_train.json: R2R train split not found"):
        VLNVectorEnv(tmp_path, "train")
    with pytest.raises(DataError, match="feature file 'missing' not found"):
        VLNVectorEnv(tiny_world, "val_seen", features="missing")


def test_a_feature_file_reached_through_a_linked_folder_outlives_that_folder(tmp_path, tiny_world):
    """The process keeps one feature bank per file, found by the file's real path. A data directory that
    reached the file through linked folders, and is gone by the time a later split needs more houses' rows,
    must not break that split."""
    world = tmp_path / "world"
    shutil.copytree(tiny_world, world)  # a file no other test has loaded: a fresh bank
    linked = tmp_path / "linked"
    linked.mkdir()
    for part in world.iterdir():
        (linked / part.name).symlink_to(part)
    VLNVectorEnv(linked, "val_seen", num_envs=2)
    shutil.rmtree(linked)
    env = VLNVectorEnv(world, "val_unseen", num_envs=2)  # houses whose rows the bank has not read yet
    obs, _ = env.reset()
    assert obs["view_features"][..., :env.feature_dim].any()


@pytest.mark.realdata
def test_real_data_directory_with_zero_features(shared_data):
    env = VLNVectorEnv(shared_data, "val_unseen", features="none", num_envs=64, seed=0)
    assert len(env.episodes) == 2349
    _teacher_rollout(env)
    sr = np.mean([m["success"] for m in env.metrics()])
    assert sr == 1.0


@pytest.mark.realdata
def test_graphs_share_the_tables_read_only_distances_and_instructions_encode_as_the_vocab(shared_data):
    """One copy of each scan's shortest-path tables: the graphs' matrices are read-only views of the flat arrays
    of the first split built over them (other tests may have built it already), equal to a fresh computation;
    the instruction rows a reset hands out are the vocabulary's padded encoding."""
    from envs.kernel.navgraph import NavGraph

    train = VLNVectorEnv(shared_data, "train", num_envs=8, seed=0, features="none")
    val_seen = VLNVectorEnv(shared_data, "val_seen", num_envs=8, seed=0, features="none")
    tables = train.data.tables
    for scan in val_seen.data.tables.scan_names[:5]:
        graph = train.graphs[scan]
        assert val_seen.graphs[scan] is graph  # one cached graph per scan
        start = tables.scan_base[tables.scan_names.index(scan)]
        for matrix, flat in ((graph.distances, tables.dist_flat), (graph.next_hop_table, tables.hop_flat)):
            assert matrix.base is not None and matrix.base.ndim == 1 and not matrix.flags.writeable
            np.testing.assert_array_equal(matrix.ravel(), flat[start:start + matrix.size])
        fresh = NavGraph(scan, json.loads((shared_data / "connectivity" / f"{scan}_connectivity.json").read_text()))
        np.testing.assert_array_equal(graph.distances, fresh.distances)
        np.testing.assert_array_equal(graph.next_hop_table, fresh.next_hop_table)
        with pytest.raises(ValueError, match="read-only"):
            graph.distances[0, 0] = 1.0
    obs, info = train.reset()
    vocab = train.data.vocab
    for row, instr_id in zip(obs["instruction"], info["instr_id"]):
        episode = train._by_id[instr_id]
        np.testing.assert_array_equal(row, vocab.encode(episode.instruction, max_len=train.data.max_instr_len))


def test_render_rgb_from_skyboxes_and_text_without(tiny_world):
    env = gym.make("VLN-R2R-v0", data_dir=tiny_world, split="val_seen", render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert image.std() > 5  # a rendered room, not a blank frame
    text_env = gym.make("VLN-R2R-v0", data_dir=tiny_world, split="val_seen", render_mode="ansi")
    text_env.reset(seed=0)
    assert "distance to goal" in text_env.render()


def _without_skyboxes(world, tmp_path):
    data = tmp_path / "no_images"
    data.mkdir()
    for part in world.iterdir():
        if part.name != "skyboxes":
            (data / part.name).symlink_to(part)
    return data


def test_render_rgb_without_images_is_the_top_down_map(tiny_world, tmp_path):
    """Gymnasium's render contract: rgb_array always gives an image. Without skyboxes it is the map of the
    agent's floor, which changes as the agent moves; check_env (render check included) raises no warning."""
    env = gym.make("VLN-R2R-v0", data_dir=_without_skyboxes(tiny_world, tmp_path), split="val_seen",
                   render_mode="rgb_array")
    _check_quietly_with_render(env)
    obs, info = env.reset(seed=0)
    first = env.render()
    assert first.shape == (480, 640, 3) and first.dtype == np.uint8 and first.std() > 5
    obs, *_ = env.step(info["teacher_action"])
    second = env.render()
    assert second.shape == first.shape and (second != first).any()  # the agent and its path moved


def _check_quietly_with_render(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_check_env_with_render_on_the_built_in_world(tiny_world):
    _check_quietly_with_render(gym.make("VLN-R2R-v0", data_dir=tiny_world, split="val_unseen",
                                        render_mode="rgb_array"))


@pytest.mark.realdata
def test_check_env_with_render_on_real_graphs_without_images(shared_data):
    env = gym.make("VLN-R2R-v0", data_dir=shared_data, split="val_unseen", features="none", render_mode="rgb_array")
    _check_quietly_with_render(env)
    env.reset(seed=3)
    assert env.render().std() > 5


@pytest.mark.realdata
def test_path_teacher_follows_the_reference_path(shared_data):
    # 8 val_unseen reference paths are not shortest paths: only the path teacher walks them exactly
    walked = {}
    for teacher in ("shortest", "path"):
        env = VLNVectorEnv(shared_data, "val_unseen", features="none", num_envs=64, teacher=teacher,
                           metrics_in_info=False)
        same = 0
        for options in env.iter_batches():
            _teacher_rollout(env, options)
            for i in range(options["count"]):
                visited = env.state.visited(i)
                collapsed = [vp for k, vp in enumerate(visited) if k == 0 or vp != visited[k - 1]]
                same += collapsed == env.state.episodes[i].path
        walked[teacher] = same
    assert walked["path"] == 2349
    assert walked["shortest"] == 2349 - 8 * 3  # 8 paths, 3 instructions each


def test_trajectories_replay_exactly_on_the_mattersim_rules(tiny_world):
    """Every entry of an env trajectory is the simulator's state after one EnvDrop action (turn or move)."""
    from envs.kernel.backends import make_r2r_simulator

    env = VLNVectorEnv(tiny_world, "val_unseen", num_envs=8, seed=4)
    obs, info = env.reset()
    rng = np.random.default_rng(4)
    for _ in range(6):
        mask = obs["action_mask"]
        obs, _, _, _, info = env.step((rng.random(mask.shape) * mask).argmax(1))  # random valid actions
    sim = make_r2r_simulator(tiny_world / "connectivity")
    for i, entry in enumerate(env.results()):
        ep = env.state.episodes[i]
        traj = entry["trajectory"]
        sim.newEpisode([ep.scan], [ep.path[0]], [ep.heading], [0.0])
        state = sim.getState()[0]
        assert [state.location.viewpointId, state.heading, state.elevation] == traj[0]
        for prev, cur in zip(traj, traj[1:]):
            if cur[0] == prev[0]:  # a turn: one 30-degree step up/down or right
                up = np.sign(round(cur[2] - prev[2], 6))
                sim.makeAction([0], [0.0 if up else 1.0], [float(up)])
            else:
                ids = [loc.viewpointId for loc in sim.getState()[0].navigableLocations]
                sim.makeAction([ids.index(cur[0])], [0.0], [0.0])
            state = sim.getState()[0]
            assert [state.location.viewpointId, state.heading, state.elevation] == cur


@pytest.mark.parametrize("policy", ["path_teacher", "random"])
def test_fidelity_reward_adds_up_to_the_episode_ndtw(tiny_world, policy):
    """reward="ndtw": the rewards of an episode add up to its final nDTW (as the scorer computes it, turns
    included) minus the start's, plus 1 at a successful STOP; the path teacher walks RxR's detours exactly."""
    from eval.metrics import SUCCESS_DISTANCE

    env = VLNVectorEnv(tiny_world, "val_unseen", task="rxr", languages=["hi"], num_envs=8, seed=2,
                       teacher="path", reward="ndtw")
    obs, info = env.reset()
    start = env.state.ndtw.copy()
    total, stopped = np.zeros(8), np.zeros(8, dtype=bool)
    rng = np.random.default_rng(0)
    while info["active"].any():
        mask = obs["action_mask"]
        action = info["teacher_action"] if policy == "path_teacher" else (rng.random(mask.shape) * mask).argmax(1)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        stopped |= terminated
    metrics = env.metrics()
    for i, m in enumerate(metrics):
        bonus = 1.0 if stopped[i] and m["nav_error"] < SUCCESS_DISTANCE else 0.0
        assert total[i] == pytest.approx(m["ndtw"] - start[i] + bonus, abs=1e-6)
    if policy == "path_teacher":
        assert all(m["ndtw"] == 1.0 and m["success"] == 1.0 for m in metrics)
    else:
        assert min(m["ndtw"] for m in metrics) < 0.5  # the random walks strayed: the test compares real sums


def test_indices_mode_gathers_the_features_mode_arrays_and_splits_share_one_bank(tiny_world):
    """observation_mode='indices' hands out rows of feature_table instead of copies; gathering them gives
    features mode's arrays exactly. The splits of one feature file share one table of view features."""
    from envs.gym.candidates import angle_features

    full = VLNVectorEnv(tiny_world, "val_seen", num_envs=4, seed=1)
    lean = VLNVectorEnv(tiny_world, "val_seen", num_envs=4, seed=1, observation_mode="indices")
    other = VLNVectorEnv(tiny_world, "val_unseen", num_envs=4, seed=1)
    pointers = {env.feature_table.__array_interface__["data"][0] for env in (full, lean, other)}
    assert len(pointers) == 1  # one bank
    a, info = full.reset()
    b, _ = lean.reset()
    for _ in range(4):
        assert lean.observation_space.contains(b)
        table, d = lean.feature_table, lean.feature_dim
        np.testing.assert_array_equal(a["view_features"][:, :, :d], table[b["viewpoint"]])
        np.testing.assert_array_equal(a["view_features"][:, :, d:], lean.view_angle_table[b["heading_index"]])
        gathered = table[b["viewpoint"][:, None], b["candidate_view"]]  # (B, K, D)
        real = b["action_mask"][:, 1:]
        np.testing.assert_array_equal(a["candidate_features"][:, :, :d][real], gathered[real])
        angles = angle_features(b["candidate_angles"][..., 0], b["candidate_angles"][..., 1])
        np.testing.assert_array_equal(a["candidate_features"][:, :, d:][real], angles[real])
        action = info["teacher_action"]
        a, _, _, _, info = full.step(action)
        b, _, _, _, _ = lean.step(action)


def test_feature_bank_reads_a_file_straight_into_one_reservation():
    """A source that knows its size gets all its rows reserved once and filled in place (no copy of the table
    when a split loads, so no transient peak); a plain ``table`` source is appended; both give the right rows."""
    from envs.gym.tables import FeatureBank

    blocks = {f"s_{i}": np.full((36, 3), float(i), dtype=np.float32) for i in range(10)}

    class File:  # the FeatureFile protocol: layout() and fill()
        def layout(self):
            return len(blocks), 3

        def fill(self, keys, out):
            fills.append(len(keys))
            out[...] = np.stack([blocks[k] for k in keys])

    class Memory:  # the plain protocol: table()
        def table(self, keys, dtype):
            return np.stack([blocks[k] for k in keys]).astype(dtype)

    fills = []
    for source in (File(), Memory()):
        bank = FeatureBank(source, 5, np.float32)  # a placeholder size: the source's own (3) wins
        first = bank.rows(["s_3", "s_1", "s_3"])
        pointer = bank.array.__array_interface__["data"][0]
        second = bank.rows(["s_1", "s_7", "s_0"])  # s_1 is held already
        assert bank.array[first][:, 0, 0].tolist() == [3.0, 1.0, 3.0]
        assert bank.array[second][:, 0, 0].tolist() == [1.0, 7.0, 0.0]
        assert len(bank.array) == 4 and bank.dim == 3
        if isinstance(source, File):
            assert fills == [2, 2]  # only the missing keys are read
            assert bank.array.__array_interface__["data"][0] == pointer  # filled in place: nothing was copied
            assert len(bank._store) == len(blocks)  # room for the whole file, reserved at the first load


def test_float16_bank_observes_the_rounded_features_in_float32(tiny_world):
    """feature_dtype='float16' holds the table in half the memory; observations stay float32 and carry each
    feature rounded to float16 (the angle dims exactly), views and candidates alike."""
    full = VLNVectorEnv(tiny_world, "val_seen", num_envs=4, seed=1)
    half = VLNVectorEnv(tiny_world, "val_seen", num_envs=4, seed=1, feature_dtype="float16")
    assert half.feature_table.dtype == np.float16 and full.feature_table.dtype == np.float32  # 2 bytes a value, not 4
    d = full.feature_dim
    a, info = full.reset()
    b, _ = half.reset()
    for _ in range(4):
        for key in ("view_features", "candidate_features"):
            assert b[key].dtype == np.float32
            np.testing.assert_array_equal(b[key][..., :d], a[key][..., :d].astype(np.float16).astype(np.float32))
            np.testing.assert_array_equal(b[key][..., d:], a[key][..., d:])
        assert not np.array_equal(b["view_features"], a["view_features"])  # the rounding is real
        action = info["teacher_action"]
        a, _, _, _, info = full.step(action)
        b, _, _, _, _ = half.step(action)
