"""The Gymnasium environment for instruction-following navigation (R2R and RxR)."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from envs.gym.batch import BatchState
from envs.gym.data import load_task_data
from envs.gym.spaces import observation_space
from envs.kernel.grid import ELEVATIONS, HEADING_INCREMENT, R2R_CAMERA
from eval.metrics import SUCCESS_DISTANCE


class VLNEnv(gym.Env):
    """Follow a natural-language instruction through a house, choosing among panoramic candidates.

    ## Description
    Room-to-Room (Anderson et al., 2018) and Room-across-Room (Ku et al., 2020) in EnvDrop's panoramic
    action space (Tan et al., 2019): at each viewpoint the agent sees 36 views (12 headings x 3 elevations)
    and chooses one of the navigable neighbours, or STOP. Rules, angles and trajectories follow MatterSim's
    discretized simulator exactly (see :mod:`envs.kernel.simulator` and :mod:`envs.gym.candidates`).

    ## Action Space
    ``Discrete(K + 1)``: 0 is STOP, ``k >= 1`` moves to candidate ``k - 1``. K is the largest candidate count
    in the split's houses. Use ``observation["action_mask"]``; a masked action is taken as STOP (no crash).

    ## Observation Space
    A ``Dict`` of fixed-shape arrays:
    - ``instruction``: int64 [L] token ids, ``<BOS> words <EOS>`` padded with 0 (L = 80 for R2R, 160 for RxR).
    - ``view_features``: float32 [36, D + 128], each view's image feature and its angle feature
      ``[sin h, cos h, sin e, cos e] x 32`` (h relative to the agent's heading, e the view's elevation).
    - ``candidate_features``: float32 [K, D + 128], the feature of the view each candidate is seen from and
      its angle feature (heading relative to the agent, absolute elevation); zeros on padding.
    - ``heading``, ``elevation``: float32 scalars, the agent's camera angles (EnvDrop feeds their angle
      feature to the decoder as the previous action).
    - ``action_mask``: int8 [K + 1], 1 where the action is valid.

    ## Starting State
    The episode's start viewpoint, heading snapped to the 30-degree grid (MatterSim's discretized mode),
    elevation 0. ``reset(seed=...)`` makes the episode choice reproducible; ``options={"instr_id": ...}``
    picks one.

    ## Reward
    ``reward="goal"`` (default), EnvDrop's: at STOP +2 if within 3 m of the goal else -2; a move +1 if it
    brought the agent closer to the goal (shortest-path distance), -1 if farther, 0 if unchanged (EnvDrop's
    code crashes there). ``reward="ndtw"``, fidelity (for RxR's non-shortest paths): a move earns the change
    of the nDTW of the trajectory so far (turns included, as the metric counts them), STOP within 3 m +1.

    ## Episode End
    Terminates on STOP. Truncation after ``max_episode_steps`` (35) is Gymnasium's ``TimeLimit``.

    ## Information
    ``teacher_action`` (next step on the shortest path to the goal, 0 at the goal), ``distance`` to the goal,
    ``instr_id``, ``viewpoint``; after every step ``metrics`` (NE, SR, OSR, TL, SPL, nDTW, SDTW, CLS of the
    trajectory so far, from :mod:`eval.metrics`; final at the episode's end) and ``result`` (the
    submission-format trajectory).

    ## Arguments
    ``data_dir`` (None: the built-in world), ``split``, ``features`` (file name or path, ``"none"`` for zeros),
    ``task`` (``"r2r"``/``"rxr"``), ``languages`` (RxR filter), ``render_mode`` (``"rgb_array"``: the camera
    view rendered from the skyboxes where the data directory has them, else the top-down map of the agent's
    floor with its path so far, the reference path and the goal; ``"ansi"``: a text description),
    ``teacher`` (``"shortest"``: next step on the shortest path to the goal, as EnvDrop/CLIP-ViL; ``"path"``:
    along the reference path, for RxR's non-shortest paths), ``reward`` (``"goal"`` or ``"ndtw"``, above),
    ``joint`` (RxR: one vocabulary for all languages, for a joint multilingual model).

    ## Version History
    - v0: first release.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 2}

    def __init__(self, data_dir: str | Path | None = None, split: str = "train", features: str | None = None,
                 task: str = "r2r", languages: list[str] | None = None, render_mode: str | None = None,
                 feature_dtype: str = "float32", teacher: str = "shortest", reward: str = "goal",
                 joint: bool = False) -> None:
        self.data = load_task_data(data_dir, split, task, features, languages, feature_dtype, joint)
        self.observation_space = observation_space(self.data)
        self.action_space = gym.spaces.Discrete(self.data.tables.max_candidates + 1)
        self.render_mode = render_mode
        self.state = BatchState(self.data.tables, 1, max_steps=None, teacher=teacher, reward=reward)
        self._by_id = {ep.instr_id: ep for ep in self.data.episodes}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if "instr_id" in options:
            if options["instr_id"] not in self._by_id:
                raise KeyError(f"unknown instr_id {options['instr_id']!r} in the {self.data.split} split")
            episode = self._by_id[options["instr_id"]]
        elif "episode" in options:
            episode = options["episode"]
        else:
            episode = self.data.episodes[int(self.np_random.integers(len(self.data.episodes)))]
        self.state.start([episode], self.data.encode(episode)[None])
        return self._observe(), self._info()

    def step(self, action):
        reward, terminated, truncated = self.state.step(np.asarray([int(action)]))
        info = self._info()
        # The TimeLimit wrapper, not this env, knows when the episode is cut, so the metrics of the trajectory
        # so far come with every step; at the episode's end they are its final metrics.
        info["metrics"] = self.state.episode_metrics(0)
        info["result"] = self.state.result(0)
        return self._observe(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self.render_mode == "rgb_array":
            image = self._camera_view()
            return image if image is not None else self._map_view()
        return self._text()

    def _camera_view(self) -> np.ndarray | None:
        """What the agent's camera sees (R2R camera), rendered from the skybox; None without images."""
        from envs.kernel.skybox import has_skybox, load_skybox, render_views  # torch: only when rendering

        s = self.state
        scan, vp = s.tables.keys[s.row[0]]
        skyboxes = self.data.data_dir / "skyboxes"
        if not has_skybox(skyboxes, scan, vp):
            return None
        graph = s.tables.graphs[scan]
        faces = load_skybox(skyboxes, scan, vp)[None]  # (1, 6, 3, S, S)
        heading = np.array([[s.heading_ix[0] * HEADING_INCREMENT]])
        elevation = np.array([[ELEVATIONS[s.elevation_ix[0]]]])
        rotation = graph.poses[graph.ix(vp)][None, :3, :3]
        view = render_views(faces, heading, elevation, rotation, *R2R_CAMERA)  # (1, 1, 3, H, W)
        return view[0, 0].permute(1, 2, 0).numpy()  # (H, W, 3) uint8

    def _map_view(self) -> np.ndarray:
        """The top-down map of the agent's floor: the path so far, the reference path and goal (when known),
        and the agent along its heading. (H, W, 3) uint8."""
        from envs.kernel.topdown import draw_map  # matplotlib: only when rendering

        s = self.state
        scan, vp = s.tables.keys[s.row[0]]
        episode = s.episodes[0]
        reference = episode.path if s.goal[0] >= 0 else None
        return draw_map(s.tables.graphs[scan], reference=reference, walked=s.visited(0),
                        agent=(vp, float(s.heading_ix[0] * HEADING_INCREMENT)), success_radius=SUCCESS_DISTANCE,
                        title=f"{episode.instr_id}  step {int(s.steps[0])}", size=(640, 480))

    def _text(self) -> str:
        s = self.state
        ep = s.episodes[0]
        scan, vp = s.tables.keys[s.row[0]]
        lines = [f"instruction: {ep.instruction}", f"scan {scan} viewpoint {vp} step {s.steps[0]}",
                 f"heading {s.heading_ix[0] * 30} deg, elevation {(s.elevation_ix[0] - 1) * 30} deg, "
                 f"distance to goal {s.distance[0]:.2f} m"]
        for k in range(int(s.tables.cand_count[s.row[0]])):
            target = s.tables.keys[s.tables.cand_target[s.row[0], k]][1]
            lines.append(f"  action {k + 1}: go to {target} (view {s.tables.cand_point[s.row[0], k]})")
        return "\n".join(lines)

    def _observe(self) -> dict[str, np.ndarray]:
        cand, mask = self.state.candidate_features()
        return {
            "instruction": self.state.instructions[0].copy(),
            "view_features": self.state.view_features()[0],
            "candidate_features": cand[0],
            "heading": self.state.heading().reshape(-1)[0:1].reshape(()),
            "elevation": self.state.elevation().reshape(-1)[0:1].reshape(()),
            "action_mask": mask[0].astype(np.int8),
        }

    def _info(self) -> dict:
        s = self.state
        return {"teacher_action": int(s.teacher_actions()[0]), "distance": float(s.distance[0]),
                "instr_id": s.episodes[0].instr_id, "viewpoint": s.tables.keys[s.row[0]][1]}
