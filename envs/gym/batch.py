"""The episode rules on a batch of episodes: the core shared by the Gymnasium env and the vector env.

One implementation of the rules (EnvDrop's panoramic action space over MatterSim's discretized views)
working on a batch of episodes at once in numpy, over a split's :class:`~envs.gym.tables.ViewpointTables`.
The single :class:`envs.gym.env.VLNEnv` is this core with a batch of one;
:class:`envs.gym.vector_env.VLNVectorEnv` exposes the batch.

Actions: 0 is STOP; ``k >= 1`` moves to candidate ``k - 1``. Taking a candidate tilts, turns right until the
view index matches, then moves (as EnvDrop's ``make_equiv_action``), and every turn is recorded as a
repeated viewpoint in the trajectory. The agent arrives looking along that view.
"""

from __future__ import annotations

import numpy as np

from envs.gym.candidates import ANGLE_DIM, angle_features, turn_views, view_angle_table
from envs.gym.tables import ViewpointTables
from envs.kernel.grid import (ELEVATIONS, HEADING_COUNT, HEADING_INCREMENT, VIEW_COUNT, VIEW_ELEVATIONS,
                              VIEW_HEADINGS, snap_heading_index)
from eval.metrics import SUCCESS_DISTANCE, MetricOptions, dtw_extend, score_episodes
from tasks.r2r import Episode

_VIEW_HEADINGS = VIEW_HEADINGS.tolist()  # Python floats: trajectories are lists
_VIEW_ELEVATIONS = VIEW_ELEVATIONS.tolist()


TEACHERS = ("shortest", "path")
REWARDS = ("goal", "ndtw")
FIDELITY_SUCCESS_BONUS = 1.0  # reward="ndtw": added at STOP within the success distance


class BatchState:
    """The running state of B episodes; all per-episode arrays are [B].

    Moves are logged as (view index, target row) pairs and trajectories (with their turns) are expanded
    only when asked for, so stepping stays vectorised.
    """

    def __init__(self, tables: ViewpointTables, batch_size: int, max_steps: int | None,
                 metric_options: MetricOptions = MetricOptions(), eager_metrics: bool = True,
                 teacher: str = "shortest", reward: str = "goal") -> None:
        if teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {TEACHERS}, got {teacher!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {reward!r}")
        self.teacher, self.reward = teacher, reward
        self.tables = tables
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.metric_options = metric_options
        self.eager_metrics = eager_metrics  # score episodes as they end (else on request)
        self.view_angles = view_angle_table()  # [12, 36, 128]
        self.episodes: list[Episode | None] = [None] * batch_size
        self.row = np.zeros(batch_size, dtype=np.int64)
        self.goal = np.full(batch_size, -1, dtype=np.int64)  # -1: no goal known (test split)
        self.heading_ix = np.zeros(batch_size, dtype=np.int64)  # 0..11, the agent looks along view h + 12 e
        self.elevation_ix = np.ones(batch_size, dtype=np.int64)  # 0, 1, 2 for -30, 0, +30 degrees
        self.steps = np.zeros(batch_size, dtype=np.int64)
        self.active = np.zeros(batch_size, dtype=bool)
        self.distance = np.zeros(batch_size, dtype=np.float64)
        self.instructions = np.zeros((batch_size, 1), dtype=np.int64)
        self.start_heading = np.zeros(batch_size, dtype=np.int64)
        self.moves: list[list[tuple[int, int]]] = [[] for _ in range(batch_size)]
        self.metrics: list[dict | None] = [None] * batch_size
        self.reference_rows: list[np.ndarray | None] = [None] * batch_size  # reward="ndtw": the reference path
        self.dtw_rows: list[np.ndarray | None] = [None] * batch_size  # its DTW recursion row so far
        self.ndtw = np.zeros(batch_size)  # nDTW of the trajectory so far

    # -- episode start ---------------------------------------------------------------------------
    def start(self, episodes: list[Episode], instructions: np.ndarray) -> None:
        """Place each episode at its start viewpoint, heading snapped to the 30-degree grid (MatterSim)."""
        assert len(episodes) == self.batch_size, f"need {self.batch_size} episodes, got {len(episodes)}"
        t = self.tables
        self.episodes = list(episodes)
        self.instructions = instructions
        for i, ep in enumerate(episodes):
            self.row[i] = t.row(ep.scan, ep.path[0])
            self.goal[i] = t.row(ep.scan, ep.path[-1]) if len(ep.path) > 1 or ep.distance is not None else -1
            self.heading_ix[i] = snap_heading_index(ep.heading)
        self.start_heading[:] = self.heading_ix
        self.moves = [[] for _ in range(self.batch_size)]
        self.progress = np.zeros(self.batch_size, dtype=np.int64)  # furthest reference index reached
        self.metrics = [None] * self.batch_size
        self.elevation_ix[:] = 1
        self.steps[:] = 0
        self.active[:] = True
        self.distance = self._goal_distance()
        if self.reward == "ndtw":
            for i, ep in enumerate(episodes):
                known = self.goal[i] >= 0
                self.reference_rows[i] = np.array([t.row(ep.scan, vp) for vp in ep.path]) if known else None
                self.dtw_rows[i] = None
                if known:
                    self._extend_dtw(i, [int(self.row[i])])

    def _goal_distance(self) -> np.ndarray:
        has_goal = self.goal >= 0
        out = np.full(self.batch_size, np.nan)
        out[has_goal] = self.tables.distances_to(self.row[has_goal], self.goal[has_goal])
        return out

    # -- observation pieces ----------------------------------------------------------------------
    def view_features(self) -> np.ndarray:
        """[B, 36, D + 128]: each view's image feature and its angle relative to the agent's heading.

        Finished episodes observe zeros: nothing is gathered for them.
        """
        t = self.tables
        d = t.feature_dim
        out = np.empty((self.batch_size, VIEW_COUNT, d + ANGLE_DIM), dtype=np.float32)
        out[~self.active] = 0.0
        live = np.flatnonzero(self.active)
        bank = t.bank.array
        if bank.dtype != np.float32:  # a float16 bank: one gather, widened at once
            out[live, :, :d] = _widen(bank[t.feature_row[self.row[live]]])
        else:
            for i, r in zip(live.tolist(), t.feature_row[self.row[live]].tolist()):  # row by row: faster than
                out[i, :, :d] = bank[r]  # (36, D)                                      a fancy-index gather
        out[live, :, d:] = self.view_angles[self.heading_ix[live]]  # (n, 36, 128)
        return out

    def candidate_angles(self) -> tuple[np.ndarray, np.ndarray]:
        """Per candidate, heading relative to the agent and absolute elevation: two [B, K] float32 arrays."""
        t = self.tables
        rel_heading = t.cand_heading[self.row] - (self.heading_ix * HEADING_INCREMENT)[:, None].astype(np.float32)
        return rel_heading, t.cand_elevation[self.row]

    def heading(self) -> np.ndarray:
        """[B] float32 the agent's heading (radians, on MatterSim's 30-degree grid)."""
        return (self.heading_ix * HEADING_INCREMENT).astype(np.float32)

    def elevation(self) -> np.ndarray:
        """[B] float32 the agent's elevation (radians)."""
        return np.asarray(ELEVATIONS, dtype=np.float32)[self.elevation_ix]

    def action_mask(self) -> np.ndarray:
        """[B, K + 1] bool: STOP (while active) and the real candidates."""
        valid = self.tables.cand_target[self.row] >= 0  # (B, K)
        return np.concatenate([self.active[:, None], valid & self.active[:, None]], axis=1)

    def candidate_features(self) -> tuple[np.ndarray, np.ndarray]:
        """Candidate features [B, K, D + 128] (zeros on padding) and the action mask [B, K + 1]."""
        t = self.tables
        d = t.feature_dim
        out = np.zeros((self.batch_size, t.max_candidates, d + ANGLE_DIM), dtype=np.float32)
        live = np.flatnonzero(self.active)  # finished episodes observe zeros
        rows = self.row[live]
        feats = np.empty((len(live), t.max_candidates, d + ANGLE_DIM), dtype=np.float32)
        feats[..., :d] = _widen(t.bank.array[t.feature_row[rows][:, None], t.cand_point[rows]])  # (n, K, D)
        heading, elevation = self.candidate_angles()
        feats[..., d:] = angle_features(heading[live], elevation[live], ANGLE_DIM)  # (n, K, 128)
        feats[t.cand_target[rows] < 0] = 0.0  # padding
        out[live] = feats
        return out, self.action_mask()

    def teacher_actions(self) -> np.ndarray:
        """The teacher's action (0 = STOP at the goal or when no goal is known).

        ``teacher="shortest"`` (EnvDrop and CLIP-ViL, R2R and RxR alike): the next step on the shortest path
        to the goal. ``teacher="path"`` (for RxR's non-shortest paths): head for the reference viewpoint after
        the furthest one reached so far, by the shortest path; STOP once the goal is reached after every
        reference viewpoint.
        """
        t = self.tables
        out = np.zeros(self.batch_size, dtype=np.int64)
        targets = self.goal if self.teacher == "shortest" else self._path_targets()
        todo = self.active & (targets >= 0) & (self.row != targets)
        if not todo.any():
            return out
        rows = self.row[todo]
        hop = t.next_hops(rows, targets[todo])  # (n,) local ix
        targets = t.cand_target[rows]  # (n, K)
        match = (t.local_ix[np.maximum(targets, 0)] == hop[:, None]) & (targets >= 0)
        out[todo] = np.where(match.any(1), match.argmax(1) + 1, 0)
        return out

    def _path_targets(self) -> np.ndarray:
        """Per episode, the row of the reference viewpoint after the furthest one reached (the path teacher)."""
        t = self.tables
        out = np.full(self.batch_size, -1, dtype=np.int64)
        for i in np.flatnonzero(self.active & (self.goal >= 0)):
            path = self.episodes[i].path
            here = t.keys[self.row[i]][1]
            for k in range(len(path) - 1, int(self.progress[i]) - 1, -1):
                if path[k] == here:
                    self.progress[i] = k
                    break
            nxt = min(int(self.progress[i]) + 1, len(path) - 1)
            out[i] = t.row(self.episodes[i].scan, path[nxt])
        return out

    # -- stepping --------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply ``actions`` to the active episodes; returns reward, terminated, truncated (all [B])."""
        actions = np.asarray(actions, dtype=np.int64).reshape(self.batch_size)
        t = self.tables
        was_active = self.active.copy()
        counts = t.cand_count[self.row]
        # A masked (invalid) action does not crash: it is taken as STOP, as Gymnasium's masking advice goes.
        stop = was_active & ((actions <= 0) | (actions > counts))
        move = was_active & ~stop
        old_distance, old_ndtw = self.distance, self.ndtw.copy()
        if move.any():
            idx = np.flatnonzero(move)
            k = actions[idx] - 1
            target = t.cand_target[self.row[idx], k]
            point = t.cand_point[self.row[idx], k]
            for i, p, tgt in zip(idx.tolist(), point.tolist(), target.tolist()):
                self.moves[i].append((p, tgt))
                if self.reward == "ndtw" and self.reference_rows[i] is not None:
                    view = int(self.heading_ix[i] + HEADING_COUNT * self.elevation_ix[i])
                    here = int(self.row[i])  # each turn in place is an entry of the trajectory, then the move's
                    turns = 0 if self.metric_options.collapse_repeats else len(turn_views(view, p))
                    self._extend_dtw(i, [here] * turns + [tgt])
            self.row[idx] = target
            self.elevation_ix[idx], self.heading_ix[idx] = np.divmod(point, HEADING_COUNT)
        self.steps[was_active] += 1
        self.distance = self._goal_distance()
        reward = np.zeros(self.batch_size, dtype=np.float32)
        with np.errstate(invalid="ignore"):
            success = self.distance < SUCCESS_DISTANCE
            if self.reward == "goal":
                # EnvDrop: +1 if the move brought the agent closer, -1 if farther; 0 when unchanged (EnvDrop
                # crashes there); at STOP +2 within the success distance, else -2
                reward[move] = np.sign(np.nan_to_num(old_distance[move] - self.distance[move]))
                reward[stop] = np.where(success[stop], 2.0, -2.0)
            else:
                # fidelity (RxR; Jain et al. 2019, Ku et al. 2020): the gain in nDTW of the trajectory so far,
                # and a success bonus at STOP
                reward[move] = (self.ndtw - old_ndtw)[move]
                reward[stop] = np.where(success[stop], FIDELITY_SUCCESS_BONUS, 0.0)
        reward[self.goal < 0] = 0.0
        terminated = stop
        truncated = np.zeros(self.batch_size, dtype=bool)
        if self.max_steps is not None:
            truncated = move & (self.steps >= self.max_steps)
        self.active = was_active & ~terminated & ~truncated
        ended = np.flatnonzero(terminated | truncated)
        if self.eager_metrics and len(ended):
            for i, m in zip(ended, self.episode_metrics_many(ended)):
                self.metrics[i] = m
        return reward, terminated, truncated

    def _extend_dtw(self, i: int, rows: list[int]) -> None:
        """Append trajectory entries (table rows) to episode ``i``'s DTW against its reference; update nDTW."""
        reference = self.reference_rows[i]
        row = self.dtw_rows[i]
        for r in rows:
            row = dtw_extend(row, self.tables.distances_to(np.full(len(reference), r), reference))
        self.dtw_rows[i] = row
        self.ndtw[i] = np.exp(-row[-1] / (len(reference) * self.metric_options.threshold))

    def finished_metrics(self) -> list[dict | None]:
        """Per slot, the metrics of its finished episode (None while it runs or without a reference path)."""
        missing = [i for i in range(self.batch_size) if not self.active[i] and self.metrics[i] is None]
        for i, m in zip(missing, self.episode_metrics_many(missing)):
            self.metrics[i] = m
        return list(self.metrics)

    # -- trajectories and metrics ----------------------------------------------------------------
    def trajectory(self, i: int) -> list[list]:
        """Episode ``i``'s R2R trajectory: ``[viewpoint, heading, elevation]`` per simulator action.

        Taking a candidate tilts, turns right until the view matches, then moves (EnvDrop's
        ``make_equiv_action``), so each turn is a repeated viewpoint.
        """
        keys, headings, elevations = self.tables.keys, _VIEW_HEADINGS, _VIEW_ELEVATIONS
        vp = self.episodes[i].path[0]
        view = int(self.start_heading[i]) + HEADING_COUNT  # level
        traj = [[vp, headings[view], elevations[view]]]
        for point, target in self.moves[i]:
            for v in turn_views(view, point):
                traj.append([vp, headings[v], elevations[v]])
            vp, view = keys[target][1], point
            traj.append([vp, headings[view], elevations[view]])
        return traj

    def visited(self, i: int) -> list[str]:
        """Viewpoints of episode ``i``'s trajectory, turns included (as the scorer reads a results file)."""
        return [entry[0] for entry in self.trajectory(i)]

    def episode_metrics_many(self, slots) -> list[dict | None]:
        """Metrics of the given episodes' trajectories so far (None without a reference path), in one batch."""
        scored = [i for i in slots if self.episodes[i] is not None and self.goal[i] >= 0]
        graphs = self.tables.graphs
        values = score_episodes([self.visited(i) for i in scored], [self.episodes[i].path for i in scored],
                                [graphs[self.episodes[i].scan] for i in scored], self.metric_options)
        by_slot = dict(zip(scored, values))
        return [by_slot.get(i) for i in slots]

    def episode_metrics(self, i: int) -> dict | None:
        return self.episode_metrics_many([i])[0]

    def result(self, i: int) -> dict:
        """Episode ``i`` in the submission format."""
        return {"instr_id": self.episodes[i].instr_id, "trajectory": self.trajectory(i)}


def _widen(block: np.ndarray) -> np.ndarray:
    """A gathered feature block as float32. A float16 bank's blocks go through torch's vectorised conversion,
    about 15x faster than numpy's (5 ns per value), which would cost a follower step more than its model."""
    if block.dtype == np.float32:
        return block
    import torch  # only for a float16 bank: an env of float32 features never loads torch

    return torch.from_numpy(np.ascontiguousarray(block)).float().numpy()
