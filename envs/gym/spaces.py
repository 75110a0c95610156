"""Observation spaces of the VLN envs (documented in :class:`envs.gym.env.VLNEnv`)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.gym.candidates import ANGLE_DIM
from envs.gym.data import TaskData
from envs.kernel.grid import HEADING_COUNT, VIEW_COUNT
from features.layout import FEATURE_LIMIT


def observation_space(data: TaskData, mode: str = "features") -> gym.spaces.Dict:
    """The single-episode observation space (see :class:`envs.gym.env.VLNEnv` and
    :class:`envs.gym.vector_env.VLNVectorEnv`)."""
    # Feature files are checked to stay within FEATURE_LIMIT (features.layout); finite bounds keep check_env quiet
    dim = data.tables.feature_dim + ANGLE_DIM
    k = data.tables.max_candidates
    spaces = {"instruction": gym.spaces.Box(0, data.vocab_size - 1, shape=(data.max_instr_len,), dtype=np.int64)}
    if mode == "features":
        spaces["view_features"] = gym.spaces.Box(-FEATURE_LIMIT, FEATURE_LIMIT, shape=(VIEW_COUNT, dim),
                                                 dtype=np.float32)
        spaces["candidate_features"] = gym.spaces.Box(-FEATURE_LIMIT, FEATURE_LIMIT, shape=(k, dim),
                                                      dtype=np.float32)
    elif mode == "indices":
        spaces["viewpoint"] = gym.spaces.Box(0, len(data.tables.features) - 1, shape=(), dtype=np.int64)
        spaces["heading_index"] = gym.spaces.Box(0, HEADING_COUNT - 1, shape=(), dtype=np.int64)
        spaces["candidate_view"] = gym.spaces.Box(0, VIEW_COUNT - 1, shape=(k,), dtype=np.int64)
        spaces["candidate_angles"] = gym.spaces.Box(-2 * np.pi, 2 * np.pi, shape=(k, 2), dtype=np.float32)
    else:
        raise ValueError(f"observation mode must be 'features' or 'indices', got {mode!r}")
    spaces["heading"] = gym.spaces.Box(0.0, 2 * np.pi, shape=(), dtype=np.float32)
    spaces["elevation"] = gym.spaces.Box(-np.pi / 2, np.pi / 2, shape=(), dtype=np.float32)
    spaces["action_mask"] = gym.spaces.MultiBinary(k + 1)
    return gym.spaces.Dict(spaces)
