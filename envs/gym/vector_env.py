"""A native batched Gymnasium vector env for training: B VLN episodes stepped together in numpy.

Same rules as :class:`envs.gym.env.VLNEnv` (both run :class:`envs.gym.batch.BatchState`), but episodes
come in batches the way EnvDrop trains: ``reset()`` draws the next B episodes of a shuffled epoch and there is
no autoreset (``AutoresetMode.DISABLED``): a finished slot stays finished, its actions ignored and only STOP
unmasked, until the next ``reset()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from envs import MAX_EPISODE_STEPS
from envs.gym.batch import BatchState
from envs.gym.data import load_task_data
from envs.gym.spaces import observation_space
from tasks.r2r import Episode


class EpisodeSampler:
    """Batches of episodes, epoch after epoch in a fresh shuffled order (EnvDrop's ``R2RBatch``).

    A batch is the next ``batch_size`` episodes of the current order; when fewer are left, the order is
    reshuffled and the epoch starts again (a split smaller than the batch is topped up at random). The
    trainer keeps a second sampler for back-translation's augmented paths and plays its batches in the same
    env (``env.reset(options={"episodes": sampler.next_batch()})``).
    """

    def __init__(self, episodes: list[Episode], batch_size: int, seed: int | None = None,
                 shuffle: bool = True, shard: tuple[int, int] = (0, 1)) -> None:
        if not episodes:
            raise ValueError("an episode sampler needs at least one episode")
        self.episodes = list(episodes)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rank, self.world_size = shard  # draw world_size x batch_size, keep slice `rank` (torchrun)
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart from a fresh random state and the original order: the next batch starts a new epoch."""
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(len(self.episodes))
        self._cursor = len(self._order)

    def next_batch(self) -> list[Episode]:
        """The next ``batch_size`` episodes (with a shard: this rank's slice of the next global batch, which
        every rank draws identically)."""
        size = self.batch_size * self.world_size
        if self._cursor + size > len(self._order):
            if self.shuffle:
                self._rng.shuffle(self._order)
            self._cursor = 0
        take = self._order[self._cursor : self._cursor + size]
        self._cursor += size
        batch = [self.episodes[j] for j in take]
        while len(batch) < size:  # a split smaller than the batch
            batch.append(self.episodes[int(self._rng.integers(len(self.episodes)))])
        return batch[self.rank * self.batch_size: (self.rank + 1) * self.batch_size]

    def get_state(self) -> dict:
        """Where the sampler is (shuffle state, order, cursor), for exact resumption."""
        return {"rng": self._rng.bit_generator.state, "order": self._order.tolist(), "cursor": int(self._cursor)}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s position."""
        self._rng.bit_generator.state = state["rng"]
        self._order = np.asarray(state["order"], dtype=np.int64)
        self._cursor = int(state["cursor"])


class VLNVectorEnv(VectorEnv):
    """B R2R/RxR episodes at once. See the module docstring and :class:`envs.gym.env.VLNEnv` for the spaces.

    Arguments:
        data_dir: a data directory (None: the built-in world).
        split: ``train``, ``val_seen``, ``val_unseen`` or ``test``.
        features: feature file name or path, ``"none"`` for zero features, None for the directory's only file.
        task: ``"r2r"`` or ``"rxr"``.
        num_envs: batch size B.
        max_steps: actions per episode before truncation (EnvDrop: 35).
        languages: RxR language filter (``en``, ``hi``, ``te`` or full codes).
        seed: seeds the episode shuffle.
        teacher: ``"shortest"`` (the next step on the shortest path to the goal; EnvDrop and CLIP-ViL, R2R and
            RxR alike) or ``"path"`` (along the reference path, for RxR's non-shortest paths).
        reward: ``"goal"`` (EnvDrop's: +-1 per move by the change of the distance to the goal, +-2 at STOP by
            success) or ``"ndtw"`` (fidelity: each move's gain in the nDTW of the trajectory so far, and a
            success bonus of 1 at STOP; for RxR).
        joint: one vocabulary for every language of an RxR env (a joint multilingual model) instead of one
            per language group.
        shard: ``(rank, world_size)`` under torchrun: the sampler draws the global batch of
            ``num_envs * world_size`` episodes on every rank and this env plays slice ``rank`` of it.
        episodes: play these episodes instead of the split's (e.g. augmented paths in the split's houses).
        metrics_in_info: put each finished episode's metrics in ``info["metrics"]`` at its last step (the
            trainer turns this off and asks :meth:`metrics` only when it evaluates).
        observation_mode: ``"features"`` gives the feature arrays; ``"indices"`` gives, instead of
            ``view_features`` and ``candidate_features``, ``viewpoint`` (row of :attr:`feature_table`),
            ``heading_index`` (0-11; row of :attr:`view_angle_table`), ``candidate_view`` [K] (the view each
            candidate is seen from) and ``candidate_angles`` [K, 2] (heading relative to the agent, absolute
            elevation), so the agent gathers features itself, on its own device, without copying them here.
    """

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}

    def __init__(self, data_dir: str | Path | None = None, split: str = "train", features: str | None = None,
                 task: str = "r2r", num_envs: int = 64, max_steps: int = MAX_EPISODE_STEPS,
                 languages: list[str] | None = None, seed: int | None = None, shuffle: bool = True,
                 feature_dtype: str = "float32", observation_mode: str = "features",
                 metrics_in_info: bool = True, episodes: list[Episode] | None = None,
                 teacher: str = "shortest", reward: str = "goal", joint: bool = False,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.data = load_task_data(data_dir, split, task, features, languages, feature_dtype, joint)
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.observation_mode = observation_mode
        self.single_observation_space = observation_space(self.data, observation_mode)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.single_action_space = gym.spaces.Discrete(self.data.tables.max_candidates + 1)
        self.action_space = gym.spaces.MultiDiscrete(np.full(num_envs, self.data.tables.max_candidates + 1))
        self.state = BatchState(self.data.tables, num_envs, max_steps, eager_metrics=metrics_in_info,
                                teacher=teacher, reward=reward)
        self.metrics_in_info = metrics_in_info
        self.sampler = EpisodeSampler(episodes if episodes is not None else self.data.episodes, num_envs, seed,
                                      shuffle, shard)
        self._by_id = {ep.instr_id: ep for ep in self.sampler.episodes}

    # -- conveniences the agent uses ---------------------------------------------------------------
    @property
    def vocab(self):
        return self.data.vocab

    @property
    def episodes(self) -> list[Episode]:
        return self.sampler.episodes

    @property
    def graphs(self):
        return self.data.tables.graphs

    @property
    def feature_dim(self) -> int:
        return self.data.tables.feature_dim

    @property
    def max_candidates(self) -> int:
        return self.data.tables.max_candidates

    @property
    def feature_table(self) -> np.ndarray:
        """[R, 36, D] image features, one row per viewpoint (``observation_mode="indices"``: row ``viewpoint``)."""
        return self.data.tables.features

    @property
    def view_angle_table(self) -> np.ndarray:
        """[12, 36, 128] angle features of the 36 views for each agent heading index."""
        return self.state.view_angles

    def iter_batches(self) -> Iterator[dict]:
        """Reset options covering every episode of the split once, in order (the last batch padded)."""
        eps = self.sampler.episodes
        for start in range(0, len(eps), self.num_envs):
            chunk = eps[start : start + self.num_envs]
            chunk = chunk + [chunk[-1]] * (self.num_envs - len(chunk))
            yield {"episodes": chunk, "count": min(self.num_envs, len(eps) - start)}

    # -- Gymnasium API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.sampler.reseed(seed)
        episodes = self._pick(options or {})
        instructions = np.stack([self.data.encode(ep) for ep in episodes])  # (B, L)
        self.state.start(episodes, instructions)
        return self._observe(), self._info()

    def step(self, actions):
        reward, terminated, truncated = self.state.step(np.asarray(actions))
        info = self._info()
        done = terminated | truncated
        if self.metrics_in_info and done.any():
            info["metrics"] = [self.state.metrics[i] if done[i] else None for i in range(self.num_envs)]
        return self._observe(), reward, terminated, truncated, info

    def get_state(self) -> dict:
        """Where the episode sampler is, for exact resumption (:meth:`EpisodeSampler.get_state`)."""
        return self.sampler.get_state()

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s sampler position."""
        self.sampler.set_state(state)

    def metrics(self) -> list[dict | None]:
        """Per slot, the metrics of its finished episode (None while it runs or without a reference path)."""
        return self.state.finished_metrics()

    def candidate_viewpoints(self) -> list[list[str]]:
        """Per slot, the viewpoint each action ``k >= 1`` moves to (candidate ``k - 1``), for replays and logs."""
        t, s = self.data.tables, self.state
        return [[t.keys[g][1] for g in t.cand_target[row, : t.cand_count[row]]] for row in s.row.tolist()]

    def results(self) -> list[dict]:
        """Submission-format entries ``{instr_id, trajectory}`` of the current batch."""
        return [self.state.result(i) for i in range(self.num_envs)]

    # -- internals -----------------------------------------------------------------------------------
    def _pick(self, options: dict) -> list[Episode]:
        if "episodes" in options:
            episodes = list(options["episodes"])
        elif "instr_ids" in options:
            missing = [i for i in options["instr_ids"] if i not in self._by_id]
            if missing:
                raise KeyError(f"unknown instr_id(s) {missing[:5]} in the {self.data.split} split")
            episodes = [self._by_id[i] for i in options["instr_ids"]]
        else:
            episodes = self.sampler.next_batch()
        if len(episodes) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} episodes, got {len(episodes)}")
        return episodes

    def _observe(self) -> dict[str, np.ndarray]:
        s = self.state
        if self.observation_mode == "indices":
            return {
                "instruction": s.instructions.copy(),
                "viewpoint": self.data.tables.feature_row[s.row],
                "heading_index": s.heading_ix.copy(),
                "candidate_view": self.data.tables.cand_point[s.row],
                "candidate_angles": np.stack(s.candidate_angles(), axis=-1),
                "heading": s.heading(), "elevation": s.elevation(),
                "action_mask": s.action_mask(),
            }
        cand, mask = s.candidate_features()
        return {"instruction": s.instructions.copy(), "view_features": s.view_features(),
                "candidate_features": cand, "heading": s.heading(), "elevation": s.elevation(), "action_mask": mask}

    def _info(self) -> dict:
        s = self.state
        return {
            "teacher_action": s.teacher_actions(),
            "distance": s.distance.copy(),
            "active": s.active.copy(),
            "instr_id": [ep.instr_id for ep in s.episodes],
            "viewpoint": [s.tables.keys[r][1] for r in s.row],
        }
