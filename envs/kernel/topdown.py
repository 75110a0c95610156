"""Top-down maps of a navigation graph: floors found from the viewpoints' heights, paths drawn with matplotlib.

Matterport houses have one to four floors about 3 m apart; stairs put a few viewpoints in between. A floor is
a height at which many viewpoints stand: heights are binned (0.5 m), bins holding at least 15% of the
included viewpoints (and at least 3) are floor candidates, candidates closer than 1.5 m merge into the more
populated one, and every viewpoint belongs to the nearest floor. The map of a floor shows its viewpoints and
edges; a path is drawn where it is on that floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.kernel.navgraph import NavGraph

FLOOR_BIN = 0.5  # m
FLOOR_SHARE = 0.15  # of the included viewpoints, for a height bin to count as a floor
FLOOR_GAP = 1.5  # m: floor candidates closer than this are one floor


@dataclass(frozen=True)
class Floors:
    """``levels[f]``: height (z, m) of floor f, lowest first; ``of[ix]``: the floor of viewpoint ix."""

    levels: np.ndarray
    of: np.ndarray

    def __len__(self) -> int:
        return len(self.levels)


def find_floors(graph: NavGraph) -> Floors:
    """The floors of a house from its viewpoints' heights (see the module docstring)."""
    z = graph.positions[:, 2].astype(np.float64)
    used = z[graph.included] if graph.included.any() else z
    bins = np.round(used / FLOOR_BIN).astype(np.int64)
    values, counts = np.unique(bins, return_counts=True)
    needed = max(3, int(math.ceil(FLOOR_SHARE * len(used))))
    order = np.argsort(-counts, kind="stable")  # most populated first
    levels: list[float] = []
    for k in order:
        if counts[k] < needed and levels:
            break
        centre = float(np.median(used[bins == values[k]]))
        if all(abs(centre - level) >= FLOOR_GAP for level in levels):
            levels.append(centre)
    levels_arr = np.sort(np.asarray(levels))
    return Floors(levels_arr, np.abs(z[:, None] - levels_arr[None, :]).argmin(axis=1))


def draw_map(graph: NavGraph, floor: int | None = None, reference: list[str] | None = None,
             walked: list[str] | None = None, agent: tuple[str, float] | None = None,
             success_radius: float | None = None, title: str = "", size: tuple[int, int] = (480, 480),
             dpi: int = 100) -> np.ndarray:
    """A top-down map ``[H, W, 3]`` uint8: the floor's graph, the reference path (green), the walked path
    (orange), start (circle), goal (star) with a ``success_radius`` circle, and the agent (a triangle along
    its heading, clockwise from +y). ``floor`` defaults to the agent's (else the start's) floor."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    floors = find_floors(graph)
    pos = graph.positions.astype(np.float64)
    anchor = agent[0] if agent else (walked or reference or [None])[0]
    if floor is None:
        floor = int(floors.of[graph.ix(anchor)]) if anchor is not None else 0
    on_floor = (floors.of == floor) & graph.included
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.9 if title else 0.96))
    ax.set_aspect("equal")
    ax.set_axis_off()
    src, dst = np.nonzero(np.triu(graph.unobstructed | graph.unobstructed.T))
    keep = on_floor[src] & on_floor[dst]
    for a, b in zip(src[keep], dst[keep]):
        ax.plot(pos[[a, b], 0], pos[[a, b], 1], color="#c8c8c8", linewidth=0.8, zorder=1)
    ax.scatter(pos[on_floor, 0], pos[on_floor, 1], s=9, color="#8c8c8c", zorder=2)

    def polyline(path: list[str], colour: str, width: float, z: int) -> None:
        ix = np.array([graph.ix(vp) for vp in path])
        if len(ix):
            xy = np.where(floors.of[ix, None] == floor, pos[ix, :2], np.nan)  # breaks where it leaves the floor
            ax.plot(xy[:, 0], xy[:, 1], color=colour, linewidth=width, zorder=z, solid_capstyle="round")

    if reference:
        polyline(reference, "#2e9e44", 4.0, 3)
        goal = pos[graph.ix(reference[-1])]
        if floors.of[graph.ix(reference[-1])] == floor:
            if success_radius:
                ax.add_patch(_circle(goal[:2], success_radius))
            ax.scatter([goal[0]], [goal[1]], marker="*", s=160, color="#2e9e44", edgecolor="black", zorder=6)
    if walked:
        polyline(walked, "#f28e1c", 2.5, 4)
    start = (reference or walked or [None])[0]
    if start is not None and floors.of[graph.ix(start)] == floor:
        p = pos[graph.ix(start)]
        ax.scatter([p[0]], [p[1]], marker="o", s=70, color="white", edgecolor="black", zorder=6)
    if agent is not None and floors.of[graph.ix(agent[0])] == floor:
        p, heading = pos[graph.ix(agent[0])], agent[1]
        ax.scatter([p[0]], [p[1]], marker=(3, 0, -math.degrees(heading)), s=180, color="#1f5fbf",
                   edgecolor="black", zorder=7)
    if on_floor.any():
        margin = max(1.0, success_radius or 0.0)
        lo, hi = pos[on_floor, :2].min(axis=0) - margin, pos[on_floor, :2].max(axis=0) + margin
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _circle(centre: np.ndarray, radius: float):
    from matplotlib.patches import Circle

    return Circle(tuple(centre), radius, facecolor="#2e9e44", alpha=0.12, edgecolor="#2e9e44", zorder=2)
