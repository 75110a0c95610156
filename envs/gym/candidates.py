"""EnvDrop's panoramic action space: the 36 views, angle features, candidates and the turns that reach them.

EnvDrop (``r2r_src/env.py``, ``make_candidate``) builds a viewpoint's candidates by driving MatterSim
through its 36 discretized views (view 0 = heading 0, elevation -30 degrees; turning right, and up after
every 12 views) with the R2R camera (640x480, VFOV 60 degrees). At each view it reads
``navigableLocations[1:]``; a neighbour's angular distance is ``sqrt(rel_heading^2 + rel_elevation^2)``, and
the neighbour keeps the view where that distance is smallest (strictly: ties keep the earlier, lower view).
Candidates stay in first-seen order (a Python dict). Each stores ``normalized_heading = state.heading +
rel_heading`` (absolute), ``elevation = state.elevation + rel_elevation`` (absolute), ``pointId`` (the view)
and ``idx`` (its index in that view's ``navigableLocations``, used to move).

:func:`build_candidate_index` computes exactly that for every included viewpoint at once, with the
simulator's float32 geometry (:mod:`envs.kernel.geometry`) instead of 36 simulator calls per viewpoint; the
tests prove it equal to the simulator-driven procedure.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from envs.atomic import save_npz
from envs.datadir import DataError
from envs.kernel.geometry import camera_directions, cos_half_hfov, edge_geometry, relative_headings, visible
from envs.kernel.grid import (HEADING_COUNT, HEADING_INCREMENT, R2R_CAMERA, VIEW_COUNT, VIEW_ELEVATIONS,
                              VIEW_HEADINGS, Camera, view_elevation, view_heading)
from envs.kernel.navgraph import NavGraph

ANGLE_DIM = 128  # EnvDrop's angle feature: [sin h, cos h, sin e, cos e] x 32
_CACHE_VERSION = 1


def angle_feature(heading: float, elevation: float, size: int = ANGLE_DIM) -> np.ndarray:
    """EnvDrop's ``utils.angle_feature``: ``[sin h, cos h, sin e, cos e]`` tiled ``size // 4`` times
    (interleaved: element 4k is sin h), float32 [size]."""
    return np.array([math.sin(heading), math.cos(heading), math.sin(elevation), math.cos(elevation)]
                    * (size // 4), dtype=np.float32)


def angle_features(headings: np.ndarray, elevations: np.ndarray, size: int = ANGLE_DIM) -> np.ndarray:
    """Vectorised :func:`angle_feature`: headings and elevations of any (broadcastable) shape S -> [*S, size]."""
    h = np.asarray(headings, dtype=np.float64)
    e = np.asarray(elevations, dtype=np.float64)
    h, e = np.broadcast_arrays(h, e)
    four = np.stack([np.sin(h), np.cos(h), np.sin(e), np.cos(e)], axis=-1).astype(np.float32)  # (*S, 4)
    return np.tile(four, (1,) * h.ndim + (size // 4,))  # (*S, size)


def view_angle_features(heading_index: int, size: int = ANGLE_DIM) -> np.ndarray:
    """Angle features [36, size] of the 36 views seen by an agent looking along heading ``heading_index``
    (0-11; EnvDrop's ``get_point_angle_feature``: heading relative to the agent, elevation absolute).

    The relative heading is taken on the grid, ``(view % 12 - heading_index) * 30 degrees``, so it is exactly 0
    where EnvDrop's difference of radians leaves a 1e-16 residue.
    """
    relative = (np.arange(VIEW_COUNT) % HEADING_COUNT - heading_index) * HEADING_INCREMENT
    return angle_features(relative, VIEW_ELEVATIONS, size)


def view_angle_table(size: int = ANGLE_DIM) -> np.ndarray:
    """[12, 36, size] :func:`view_angle_features` for each of the 12 agent headings."""
    return np.stack([view_angle_features(h, size) for h in range(HEADING_COUNT)])


@dataclass(frozen=True)
class Candidate:
    """One panoramic candidate of a viewpoint (EnvDrop's candidate dict, with our field names)."""

    viewpoint_id: str  # the neighbour to move to
    ix: int  # its index in the scan's connectivity list
    point_id: int  # the view (0-35) it is taken from
    heading: float  # absolute heading (EnvDrop's normalized_heading), radians
    elevation: float  # absolute elevation, radians
    distance: float  # 3D distance in metres (MatterSim's rel_distance)
    nav_index: int  # EnvDrop's 'idx': its index in navigableLocations at that view


class TurnSequence(NamedTuple):
    """The simulator actions EnvDrop's ``make_equiv_action`` takes before moving to a candidate."""

    turns: list[tuple[int, int]]  # (heading_delta, elevation_delta) per makeAction: (0, 1) up, (0, -1) down, (1, 0) right
    views: list[int]  # the view index after each turn
    heading: float  # arrival heading (the target view's)
    elevation: float  # arrival elevation


def _turn_views(current_view_ix: int, target_point_id: int) -> tuple[int, ...]:
    level, heading_ix = divmod(current_view_ix, HEADING_COUNT)
    target_level, target_heading = divmod(target_point_id, HEADING_COUNT)
    step = 1 if target_level > level else -1
    tilts = [heading_ix + HEADING_COUNT * lv for lv in range(level + step, target_level + step, step)] \
        if level != target_level else []
    base = HEADING_COUNT * target_level
    turns = [(heading_ix + k) % HEADING_COUNT + base for k in range(1, (target_heading - heading_ix) % HEADING_COUNT + 1)]
    return tuple(tilts + turns)


_TURN_VIEWS = [[_turn_views(c, t) for t in range(VIEW_COUNT)] for c in range(VIEW_COUNT)]  # a table: trajectories
# expand every move through it


def turn_views(current_view_ix: int, target_point_id: int) -> tuple[int, ...]:
    """The view index after each turn EnvDrop's ``make_equiv_action`` makes from view ``current_view_ix``
    towards view ``target_point_id``: tilt up/down to the target's level, then turn right until it matches."""
    return _TURN_VIEWS[current_view_ix][target_point_id]


def turn_sequence(current_view_ix: int, target_point_id: int) -> TurnSequence:
    """Tilt up/down to the target's level, then turn right until the view index matches (EnvDrop's order).

    Each turn is one ``makeAction(0, dh, de)``, recorded as a repeated viewpoint in the R2R trajectory;
    the move that follows keeps the target view's heading and elevation.
    """
    for name, value in (("current_view_ix", current_view_ix), ("target_point_id", target_point_id)):
        if not 0 <= value < VIEW_COUNT:
            raise ValueError(f"{name} must be a view index 0..35, got {value}")
    views = list(turn_views(current_view_ix, target_point_id))
    turns, previous = [], current_view_ix
    for view in views:
        tilt = (view - previous) // HEADING_COUNT if abs(view - previous) == HEADING_COUNT else 0
        turns.append((0, tilt) if tilt else (1, 0))
        previous = view
    return TurnSequence(turns, views, view_heading(target_point_id), view_elevation(target_point_id))


# ---------------------------------------------------------------------------------------------- the index
_ARRAYS = ("offsets", "target_ix", "point_id", "heading", "elevation", "distance", "nav_index")


@dataclass
class CandidateIndex:
    """Every included viewpoint's candidates, flattened (CSR): viewpoint node ``g`` (``node(scan, vp)``)
    owns entries ``offsets[g]:offsets[g + 1]``, in EnvDrop's order. Excluded viewpoints own none."""

    scans: list[str]
    ids: dict[str, list[str]]  # scan -> viewpoint ids in file order
    node_offset: dict[str, int]  # scan -> node of its ix 0
    offsets: np.ndarray  # [G + 1] int64
    target_ix: np.ndarray  # [C] int32 local ix of the neighbour
    point_id: np.ndarray  # [C] int16 view index
    heading: np.ndarray  # [C] float64 absolute (normalized) heading
    elevation: np.ndarray  # [C] float64 absolute elevation
    distance: np.ndarray  # [C] float64 metres
    nav_index: np.ndarray  # [C] int16 index in navigableLocations at point_id

    def __post_init__(self) -> None:
        self._index = {scan: {vp: i for i, vp in enumerate(vps)} for scan, vps in self.ids.items()}

    @property
    def max_candidates(self) -> int:
        return int(np.diff(self.offsets).max(initial=0))

    def node(self, scan: str, viewpoint: str) -> int:
        if scan not in self.node_offset:
            raise DataError(f"candidate index has no scan {scan!r} (it covers {len(self.scans)} scans)")
        ix = self._index[scan].get(viewpoint)
        if ix is None:
            raise DataError(f"scan {scan} has no viewpoint {viewpoint!r}")
        return self.node_offset[scan] + ix

    def for_viewpoint(self, scan: str, viewpoint: str) -> list[Candidate]:
        """The candidates of one viewpoint as objects (bulk users read the arrays)."""
        g = self.node(scan, viewpoint)
        ids = self.ids[scan]
        return [Candidate(ids[int(self.target_ix[k])], int(self.target_ix[k]), int(self.point_id[k]),
                          float(self.heading[k]), float(self.elevation[k]), float(self.distance[k]),
                          int(self.nav_index[k]))
                for k in range(int(self.offsets[g]), int(self.offsets[g + 1]))]


def scan_candidates(graph: NavGraph, camera: Camera = R2R_CAMERA) -> dict[str, np.ndarray]:
    """One scan's candidate arrays (CSR over its viewpoints), EnvDrop's procedure in closed form."""
    geo = edge_geometry(graph)
    n_edges = len(geo.dst)
    cx, cy = camera_directions([view_heading(h) for h in range(HEADING_COUNT)])  # [12] float32
    seen = visible(geo.nx[:, None], geo.ny[:, None], cx[None, :], cy[None, :], cos_half_hfov(camera[2], *camera[:2]))
    e_vis, h_vis = np.nonzero(seen)  # (edge, heading) pairs in view; elevation does not change visibility
    rel_h = np.full((n_edges, HEADING_COUNT), np.nan)
    rel_h[e_vis, h_vis] = relative_headings(geo.dx[e_vis], geo.dy[e_vis], cx[h_vis], cy[h_vis])
    rel_e = geo.elevation[:, None] - VIEW_ELEVATIONS[None, ::HEADING_COUNT]  # [E, 3]
    views = np.arange(VIEW_COUNT)
    rh = rel_h[:, views % HEADING_COUNT]  # [E, 36]
    re = rel_e[:, views // HEADING_COUNT]
    key = np.sqrt(rh * rh + re * re)  # EnvDrop's angular distance; NaN where not in view
    in_view = ~np.isnan(key)
    # rank of each edge within its view's navigableLocations[1:] (sorted by key, ties by ix): idx - 1
    e_all, v_all = np.nonzero(in_view)
    order = np.lexsort((geo.dst[e_all], key[e_all, v_all], v_all, geo.src[e_all]))
    group = geo.src[e_all[order]] * VIEW_COUNT + v_all[order]
    first = np.searchsorted(group, group, side="left")
    rank = np.full((n_edges, VIEW_COUNT), -1, dtype=np.int64)
    rank[e_all[order], v_all[order]] = np.arange(len(order)) - first
    has = in_view.any(axis=1)
    best = np.argmin(np.where(in_view, key, np.inf), axis=1)  # first minimum: ties keep the lower view
    first_view = np.argmax(in_view, axis=1)
    e = np.flatnonzero(has)
    e = e[np.lexsort((rank[e, first_view[e]], first_view[e], geo.src[e]))]  # first-seen order per viewpoint
    v = best[e]
    counts = np.bincount(geo.src[e], minlength=len(graph.ids))
    offsets = np.zeros(len(graph.ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return {"offsets": offsets, "target_ix": geo.dst[e].astype(np.int32), "point_id": v.astype(np.int16),
            "heading": VIEW_HEADINGS[v] + rh[e, v], "elevation": VIEW_ELEVATIONS[v] + re[e, v],
            "distance": geo.distance[e], "nav_index": (rank[e, v] + 1).astype(np.int16)}


def _cache_key(graphs: dict[str, NavGraph], camera: Camera) -> str:
    digest = hashlib.sha1(f"v{_CACHE_VERSION} {tuple(camera)}".encode())
    for scan, graph in graphs.items():
        digest.update(scan.encode())
        digest.update("\n".join(graph.ids).encode())
        digest.update(graph.positions.tobytes())
        digest.update(np.packbits(graph.unobstructed).tobytes())
        digest.update(graph.included.tobytes())
    return digest.hexdigest()[:16]


def build_candidate_index(graphs: dict[str, NavGraph], cache_dir: str | Path | None = None,
                          camera: Camera = R2R_CAMERA) -> CandidateIndex:
    """Candidates of every viewpoint of ``graphs`` (EnvDrop's procedure with the R2R camera).

    With ``cache_dir``, the arrays are stored there as ``candidates-{hash}.npz``, keyed by a hash of the
    graphs' contents and the camera, and reused when the graphs are unchanged.
    """
    scans = list(graphs)
    ids = {scan: list(graphs[scan].ids) for scan in scans}
    node_offset, base = {}, 0
    for scan in scans:
        node_offset[scan] = base
        base += len(ids[scan])
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"candidates-{_cache_key(graphs, camera)}.npz"
        if path.exists():
            with np.load(path) as data:
                return CandidateIndex(scans, ids, node_offset, *(data[name] for name in _ARRAYS))
    parts = [scan_candidates(graphs[scan], camera) for scan in scans]
    offsets = [np.zeros(1, dtype=np.int64)]
    total = 0
    for part in parts:
        offsets.append(part["offsets"][1:] + total)
        total += int(part["offsets"][-1])
    arrays = {"offsets": np.concatenate(offsets)}
    for name in _ARRAYS[1:]:
        arrays[name] = (np.concatenate([p[name] for p in parts]) if parts
                        else np.zeros(0, dtype=np.float64))
    if path is not None:
        save_npz(path, **arrays)  # atomic: a concurrent reader never sees half a file
    return CandidateIndex(scans, ids, node_offset, *(arrays[name] for name in _ARRAYS))
