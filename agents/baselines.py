"""R2R's simple baselines on the MatterSim-exact simulator: ``python -m agents.baselines stop|random|shortest``.

They follow ``tasks/R2R/agent.py`` of peteanderson80/Matterport3DSimulator and its environment
(``tasks/R2R/env.py``): discretized views, a 640x480 camera with a 60 degree vertical field of view, each
episode starting at its start viewpoint and heading with elevation 0. Every simulator step is recorded as a
``[viewpoint, heading, elevation]`` entry of the trajectory (turns repeat the viewpoint), as R2R's agents do.

- **stop** never moves: the trajectory is the start alone.
- **random** (Anderson et al. 2018, Table 1 "Random"): turns right 0..11 times (30 degrees each, uniformly
  drawn), then moves forward into ``navigableLocations[1]`` (the location nearest the centre of view) until
  it has moved 5 times, turning right instead whenever nothing is in view; within 30 steps.
- **shortest** follows R2R's teacher (``R2RBatch._shortest_path_action``) to the goal: face the next viewpoint
  of the shortest path (turn while it is more than 30 degrees off-centre, tilt while it is more than 30
  degrees above or below), then move to it; if it is not in view, level the camera and turn towards it.

The episodes are run together as one batch of the simulator (results do not depend on the batch).
"""

from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from envs.cli import command, parse_config
from envs.datadir import DataDir, DataError
from envs.kernel.backends import make_r2r_simulator
from envs.kernel.grid import ELEVATION_INCREMENT, HEADING_COUNT, HEADING_INCREMENT
from envs.kernel.navgraph import NavGraph, load_graphs
from envs.kernel.simulator import Simulator
from envs.world.builtin import resolve_data_dir
from eval.score import Reference, load_references, write_results

AGENTS = ("stop", "random", "shortest")
TURN = HEADING_INCREMENT  # in discretized mode only the sign counts: one 30 degree step
RANDOM_MAX_STEPS = 30  # RandomAgent.rollout: for t in range(30)
RANDOM_FORWARD_STEPS = 5


@dataclass
class BaselineConfig:
    """Options of ``python -m agents.baselines`` (each field's docstring is its ``--help`` line)."""

    agent: Literal["stop", "random", "shortest"] = "random"
    """the baseline to run"""
    out: Path = Path("results.json")
    """where to write the results file (the submission format)"""
    split: str = "val_unseen"
    """the split to run: train, val_seen, val_unseen or test"""
    data_dir: Path | None = None
    """data directory with connectivity/ and R2R/ or RxR/ (default: the built-in world)"""
    task: Literal["r2r", "rxr"] = "r2r"
    """which task's split to run"""
    seed: int = 1
    """seed of the random agent's turns (1, as R2R's BaseAgent seeds Python's random)"""
    max_steps: int = 200
    """safety limit on the shortest agent's steps (about 15 suffice on R2R); exceeding it is an error"""
    details: bool = False
    """also write OUT's .details.json: each step's navigable viewpoints (what python -m eval.replay shows)"""


Trajectory = list[list]


class Recorder:
    """The trajectories (one ``[viewpoint, heading, elevation]`` per simulator state) and, with ``details``,
    at each state the navigable viewpoints in view (the extended results format of :mod:`eval.replay`)."""

    def __init__(self, count: int, details: bool = False) -> None:
        self.trajectories: list[Trajectory] = [[] for _ in range(count)]
        self.decisions: list[list[dict]] | None = [[] for _ in range(count)] if details else None

    def record(self, sim: Simulator, active: list[bool]) -> list:
        states = sim.getState()
        for i, st in enumerate(states):
            if active[i]:
                self.trajectories[i].append([st.location.viewpointId, st.heading, st.elevation])
                if self.decisions is not None:
                    self.decisions[i].append({"at": len(self.trajectories[i]) - 1, "candidates": [
                        {"viewpoint": loc.viewpointId} for loc in st.navigableLocations[1:]]})
        return states


def _start(sim: Simulator, episodes: list[Reference], recorder: Recorder) -> list:
    sim.newEpisode([e.scan for e in episodes], [e.path[0] for e in episodes], [e.heading for e in episodes],
                   [0.0] * len(episodes))
    return recorder.record(sim, [True] * len(episodes))


def run_stop(sim: Simulator, episodes: list[Reference], recorder: Recorder | None = None) -> list[Trajectory]:
    """StopAgent: the start viewpoint, heading and elevation (snapped to the 30 degree grid), nothing else."""
    recorder = recorder or Recorder(len(episodes))
    _start(sim, episodes, recorder)
    return recorder.trajectories


def run_random(sim: Simulator, episodes: list[Reference], seed: int = 1,
               recorder: Recorder | None = None) -> list[Trajectory]:
    """RandomAgent: 0..11 right turns, then forward into navigableLocations[1] 5 times (see the module doc)."""
    rng = random.Random(seed)
    turns = [rng.randrange(HEADING_COUNT) for _ in episodes]  # R2R: random.sample(range(-11, 1), 1) -> -turns
    forwards = [0] * len(episodes)
    recorder = recorder or Recorder(len(episodes))
    states = _start(sim, episodes, recorder)
    active = [True] * len(episodes)
    for _ in range(RANDOM_MAX_STEPS):
        index, heading = [0] * len(episodes), [0.0] * len(episodes)
        for i, st in enumerate(states):
            if forwards[i] >= RANDOM_FORWARD_STEPS:
                active[i] = False  # "do nothing, i.e. end": this step is not recorded
            elif turns[i] > 0:
                heading[i], turns[i] = TURN, turns[i] - 1
            elif len(st.navigableLocations) > 1:
                index[i], forwards[i] = 1, forwards[i] + 1
            else:
                heading[i] = TURN  # turn right until something is in view
        if not any(active):
            break
        sim.makeAction(index, heading, [0.0] * len(episodes))
        states = recorder.record(sim, active)
    return recorder.trajectories


def teacher_action(state, goal: str, graph: NavGraph) -> tuple[int, float, float]:
    """R2R's ``_shortest_path_action``: (navigable index, heading change, elevation change); (0, 0, 0) at the goal."""
    here = state.location.viewpointId
    if here == goal:
        return 0, 0.0, 0.0
    nxt = graph.next_hop(here, goal)
    level = state.viewIndex // HEADING_COUNT  # 0 looks down, 1 level, 2 up
    for i, loc in enumerate(state.navigableLocations):
        if loc.viewpointId == nxt:
            if loc.rel_heading > HEADING_INCREMENT:
                return 0, TURN, 0.0
            if loc.rel_heading < -HEADING_INCREMENT:
                return 0, -TURN, 0.0
            if loc.rel_elevation > ELEVATION_INCREMENT and level < 2:
                return 0, 0.0, TURN
            if loc.rel_elevation < -ELEVATION_INCREMENT and level > 0:
                return 0, 0.0, -TURN
            return i, 0.0, 0.0
    if level == 0:  # not in view: level the camera first, then turn towards it
        return 0, 0.0, TURN
    if level == 2:
        return 0, 0.0, -TURN
    dx, dy = (float(v) for v in graph.position(nxt)[:2] - graph.position(here)[:2])
    target = (math.pi / 2 - math.atan2(dy, dx)) % (2 * math.pi)  # heading is clockwise from +y
    heading = state.heading
    if (heading > target and heading - target < math.pi) or (target > heading and target - heading > math.pi):
        return 0, -TURN, 0.0
    return 0, TURN, 0.0


def run_shortest(sim: Simulator, episodes: list[Reference], graphs: dict[str, NavGraph],
                 max_steps: int = 200, recorder: Recorder | None = None) -> list[Trajectory]:
    """ShortestAgent: R2R's teacher actions until each episode stands on its goal (every step recorded)."""
    recorder = recorder or Recorder(len(episodes))
    states = _start(sim, episodes, recorder)
    active = [True] * len(episodes)
    for _ in range(max_steps):
        actions = [teacher_action(st, ep.path[-1], graphs[ep.scan]) if on else (0, 0.0, 0.0)
                   for st, ep, on in zip(states, episodes, active)]
        for i, a in enumerate(actions):
            if a == (0, 0.0, 0.0):
                active[i] = False
        if not any(active):
            return recorder.trajectories
        sim.makeAction(*(list(column) for column in zip(*actions)))
        states = recorder.record(sim, active)
    stuck = [ep.instr_id for ep, on in zip(episodes, active) if on]
    raise DataError(f"the shortest agent did not reach the goal within {max_steps} steps for {len(stuck)} "
                       f"episodes (e.g. {stuck[:3]}); raise --max-steps")


def run_baseline(cfg: BaselineConfig, data_dir: Path) -> list[dict]:
    """Run ``cfg.agent`` on every episode of the split; returns the results in the submission format (with
    ``cfg.details``, each entry also carries its ``decisions``)."""
    if cfg.agent not in AGENTS:
        raise DataError(f"unknown agent {cfg.agent!r}; choose one of {', '.join(AGENTS)}")
    episodes = load_references(cfg.task, data_dir, cfg.split, allow_test=True)
    if not episodes:
        raise DataError(f"the {cfg.task} {cfg.split} split of {data_dir} has no episodes")
    data = DataDir(data_dir)
    conn = data.require(data.connectivity, "connectivity folder")
    sim = make_r2r_simulator(conn, batch_size=len(episodes))
    recorder = Recorder(len(episodes), cfg.details)
    if cfg.agent == "stop":
        run_stop(sim, episodes, recorder)
    elif cfg.agent == "random":
        run_random(sim, episodes, cfg.seed, recorder)
    else:
        graphs = load_graphs(conn, sorted({ep.scan for ep in episodes}))
        run_shortest(sim, episodes, graphs, cfg.max_steps, recorder)
    results = [{"instr_id": ep.instr_id, "trajectory": traj} for ep, traj in zip(episodes, recorder.trajectories)]
    if recorder.decisions is not None:
        for entry, decisions in zip(results, recorder.decisions):
            entry["decisions"] = decisions
    return results


@command
def main(argv: list[str]) -> int:
    cfg = parse_config(BaselineConfig, argv, prog="python -m agents.baselines", positional=("agent",),
                       required=("agent", "out"),
                       description="Run R2R's Stop, Random or Shortest baseline and write a results file.")
    results = run_baseline(cfg, resolve_data_dir(cfg.data_dir))
    write_results(cfg.out, results)
    print(f"{cfg.agent}: {len(results)} trajectories of the {cfg.task} {cfg.split} split written to {cfg.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
