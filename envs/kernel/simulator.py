"""A MatterSim-exact simulator without rendering: the navigation rules of Matterport3DSimulator in numpy.

It reproduces the current batched API of ``MatterSim.Simulator`` (``src/lib/MatterSim.cpp``): the same
setters, ``initialize``, ``newEpisode``, ``makeAction``, ``getState`` and ``close``, the same state objects
(:mod:`envs.kernel.state`) and the same numbers: headings and elevations are doubles; the field-of-view test,
offsets and distances are float32 as glm computes them (:mod:`envs.kernel.geometry`); navigable locations are
sorted by ``sqrt(rel_heading^2 + rel_elevation^2)`` with the current location first.

Where MatterSim misbehaves on bad input this raises clear errors instead (see ``makeAction`` and
``newEpisode``), and it validates the whole batch before changing anything, so a failed call leaves the
state as it was (MatterSim moves the earlier elements before it throws).

Speed: every scan's edges are precomputed once; a step is a handful of numpy operations over the batch's
edges, and state objects are built lazily.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from envs.datadir import DataError
from envs.kernel.geometry import camera_directions, cos_half_hfov, edge_geometry, relative_headings, visible
from envs.kernel.grid import (ELEVATION_INCREMENT, ELEVATIONS, HEADING_COUNT, HEADING_INCREMENT,
                              snap_elevation_index, snap_heading_index, wrap_heading)
from envs.kernel.navgraph import NavGraph, load_graphs
from envs.kernel.state import NavigableBatch, SimState, StepFrame, ViewPoint


@dataclass(frozen=True)
class EdgeTable:
    """Every loaded scan's edge geometry concatenated, so one step gathers every batch element's edges at once."""

    scans: list[str]
    graphs: dict[str, NavGraph]
    node_offset: dict[str, int]  # scan -> global node of its ix 0
    ids: list[str]  # global node -> viewpoint id
    local_ix: list[int]  # global node -> ix in its scan
    xyz: list[list[float]]  # global node -> float32 position as Python floats
    offsets: np.ndarray  # [G + 1] edges of global node g are offsets[g]:offsets[g+1]
    target: np.ndarray  # [E] global node of the edge's end
    target_ix: np.ndarray  # [E] its local ix
    dx: np.ndarray
    dy: np.ndarray
    nx: np.ndarray
    ny: np.ndarray
    distance: np.ndarray
    elevation: np.ndarray

    def node(self, scan: str, viewpoint: str) -> int:
        """Global node of ``viewpoint``; the errors MatterSim raises, with the file and the fix named."""
        graph = self.graphs.get(scan)
        if graph is None:
            raise DataError(f"unknown scan {scan!r}: it is not listed in scans.txt of the navigation graphs "
                            f"({len(self.scans)} scans loaded). Check the scan id or setNavGraphPath")
        ix = graph.index.get(viewpoint)
        if ix is None:
            raise DataError(f"scan {scan} has no viewpoint {viewpoint!r} (graph {graph.source}). "
                            "Check the viewpoint id")
        if not graph.included[ix]:
            raise DataError(f"viewpoint {viewpoint} of scan {scan} is excluded from the connectivity graph "
                            f"({graph.source}, 'included' is false); start episodes at included viewpoints")
        return self.node_offset[scan] + ix


def build_edge_table(graphs: dict[str, NavGraph]) -> EdgeTable:
    """Concatenate the edge geometry of ``graphs`` (in their order) into one :class:`EdgeTable`."""
    scans = list(graphs)
    node_offset, ids, local_ix, xyz = {}, [], [], []
    parts = []
    base = 0
    for scan in scans:
        graph = graphs[scan]
        node_offset[scan] = base
        ids.extend(graph.ids)
        local_ix.extend(range(len(graph.ids)))
        xyz.extend(graph.positions.astype(np.float64).tolist())
        parts.append((base, edge_geometry(graph)))
        base += len(graph.ids)
    offsets = [np.zeros(1, dtype=np.int64)]
    edge_base = 0
    for _, geo in parts:
        offsets.append(geo.offsets[1:] + edge_base)
        edge_base += len(geo.dst)

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(geo, name) for _, geo in parts]) if parts else np.zeros(0)

    target = np.concatenate([geo.dst + b for b, geo in parts]) if parts else np.zeros(0, dtype=np.int64)
    return EdgeTable(scans, dict(graphs), node_offset, ids, local_ix, xyz, np.concatenate(offsets), target,
                 cat("dst"), cat("dx"), cat("dy"), cat("nx"), cat("ny"), cat("distance"), cat("elevation"))


@lru_cache(maxsize=8)
def _load_edge_table(conn_dir: str) -> EdgeTable:
    return build_edge_table(load_graphs(conn_dir))


def load_edge_table(conn_dir: str | Path) -> EdgeTable:
    """Every scan named in ``conn_dir/scans.txt``, as MatterSim loads them (cached per folder)."""
    return _load_edge_table(str(Path(conn_dir).resolve()))


def _as_list(values, name: str, batch_size: int) -> list:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a list with one entry per batch element (batch size {batch_size}), "
                        f"got {type(values).__name__}; MatterSim's batched API takes lists")
    values = list(values)
    if len(values) != batch_size:
        raise ValueError(f"{name} has {len(values)} entries but the batch size is {batch_size} "
                         "(set it with setBatchSize before initialize)")
    return values


class Simulator:
    """MatterSim's ``Simulator`` (batched API, rendering off). Typical R2R use
    (:func:`envs.kernel.backends.make_r2r_simulator` configures it as R2R does)::

        sim = make_r2r_simulator("DATA/connectivity", batch_size=4)
        sim.newEpisode(scans, viewpoints, headings, [0.0] * 4)
        state = sim.getState()[0]
        sim.makeAction([1, 0, 0, 0], [0.0, 1.0, 0.0, 0.0], [0.0] * 4)
    """

    def __init__(self) -> None:
        # MatterSim's defaults (Simulator::Simulator), except rendering, which is off: we never render.
        self.width, self.height, self.vfov = 320, 240, 0.8
        self.min_elevation, self.max_elevation = -0.94, 0.94
        self.nav_graph_path = "./connectivity"
        self.dataset_path = "./data/v1/scans/"
        self.discretize_views = False
        self.restricted_navigation = True
        self.batch_size = 1
        self.cache_size = 200
        self.preload = False
        self.seed = 1
        self.initialized = False
        self.edges: EdgeTable | None = None
        self._started = False

    # ------------------------------------------------------------------ configuration (MatterSim names)
    def _config(self, name: str) -> bool:
        """MatterSim silently ignores most setters after initialize; we warn instead of staying silent."""
        if self.initialized:
            warnings.warn(f"Simulator.{name} has no effect after initialize() (as in MatterSim)", stacklevel=3)
            return False
        return True

    def setNavGraphPath(self, path: str | Path) -> None:  # noqa: N802
        if self._config("setNavGraphPath"):
            self.nav_graph_path = str(path)

    def setDatasetPath(self, path: str | Path) -> None:  # noqa: N802
        """Accepted for compatibility; unused (nothing is rendered)."""
        if self._config("setDatasetPath"):
            self.dataset_path = str(path)

    def setCameraResolution(self, width: int, height: int) -> None:  # noqa: N802
        # Not guarded by `initialized` in MatterSim: changes the field of view of later steps.
        if width <= 0 or height <= 0:
            raise ValueError(f"camera resolution must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)

    def setCameraVFOV(self, vfov: float) -> None:  # noqa: N802
        """Vertical field of view in radians (R2R: math.radians(60)). Takes effect at any time, as in MatterSim."""
        self.vfov = float(vfov)

    def setElevationLimits(self, min: float, max: float) -> bool:  # noqa: N802, A002 (MatterSim names)
        """Continuous-mode elevation limits; returns False (and changes nothing) unless -pi/2 < min < 0 < max < pi/2."""
        if min < 0.0 and min > -math.pi / 2.0 and max > 0.0 and max < math.pi / 2.0:
            self.min_elevation, self.max_elevation = float(min), float(max)
            return True
        return False

    def setDiscretizedViewingAngles(self, value: bool) -> None:  # noqa: N802
        if self._config("setDiscretizedViewingAngles"):
            self.discretize_views = bool(value)

    def setRestrictedNavigation(self, value: bool) -> None:  # noqa: N802
        if self._config("setRestrictedNavigation"):
            self.restricted_navigation = bool(value)

    def setRenderingEnabled(self, value: bool) -> None:  # noqa: N802
        if value:
            raise NotImplementedError("this simulator does not render images; call setRenderingEnabled(False) "
                                      "and use envs.kernel.skybox (skyboxes) or precomputed features instead")

    def setDepthEnabled(self, value: bool) -> None:  # noqa: N802
        if value:
            raise NotImplementedError("this simulator does not render depth images; call setDepthEnabled(False)")

    def setPreloadingEnabled(self, value: bool) -> None:  # noqa: N802
        """Accepted for compatibility; the graphs are always loaded at initialize."""
        if self._config("setPreloadingEnabled"):
            self.preload = bool(value)

    def setBatchSize(self, size: int) -> None:  # noqa: N802
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        if self._config("setBatchSize"):
            self.batch_size = int(size)

    def setCacheSize(self, size: int) -> None:  # noqa: N802
        """Accepted for compatibility (MatterSim's GPU texture cache)."""
        if self._config("setCacheSize"):
            self.cache_size = int(size)

    def setSeed(self, seed: int) -> None:  # noqa: N802
        if self._config("setSeed"):
            self.seed = int(seed)

    # ------------------------------------------------------------------ lifecycle
    def initialize(self) -> None:
        """Load every scan listed in ``scans.txt`` of the navigation-graph folder and allocate the batch."""
        if self.initialized:
            return
        self.edges = load_edge_table(self.nav_graph_path)
        b = self.batch_size
        self._scan = [""] * b
        self._node = np.full(b, -1, dtype=np.int64)
        self._heading = np.zeros(b, dtype=np.float64)
        self._elevation = np.zeros(b, dtype=np.float64)
        self._view_index = np.zeros(b, dtype=np.int64)
        self._step = np.zeros(b, dtype=np.int64)
        self._nav: NavigableBatch | None = None
        self._states: list[SimState] | None = None
        self._locations: dict[int, ViewPoint] = {}
        self._rgb = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        self._rgb.flags.writeable = False
        self._depth = np.zeros((self.height, self.width, 1), dtype=np.uint16)
        self._depth.flags.writeable = False
        self._started = False
        self.initialized = True

    init = initialize  # the name in MatterSim v0.1, which EnvDrop and CLIP-ViL call

    def close(self) -> None:
        """Release the batch; a later ``newEpisode`` initializes again."""
        self.initialized = False
        self._started = False

    # ------------------------------------------------------------------ episodes and actions
    def newEpisode(self, scanIds: Sequence[str], viewpointIds: Sequence[str],  # noqa: N802, N803
                   headings: Sequence[float], elevations: Sequence[float]) -> None:  # noqa: N803
        """Start every batch element at a viewpoint; headings and elevations are set as by ``makeAction``
        (snapped to the 30 degree grid in discretized mode, elevation clamped to the limits otherwise)."""
        if not self.initialized:
            self.initialize()
        b = self.batch_size
        scans = _as_list(scanIds, "scanIds", b)
        vps = _as_list(viewpointIds, "viewpointIds", b)
        heads = np.asarray(_as_list(headings, "headings", b), dtype=np.float64)
        elevs = np.asarray(_as_list(elevations, "elevations", b), dtype=np.float64)
        nodes = np.array([self.edges.node(s, v) for s, v in zip(scans, vps)], dtype=np.int64)
        self._scan = [str(s) for s in scans]
        self._node = nodes
        self._step[:] = 0
        self._set_heading_elevation(heads, elevs)
        self._started = True
        self._populate_navigable()

    def makeAction(self, index: Sequence[int], heading: Sequence[float],  # noqa: N802
                   elevation: Sequence[float]) -> None:
        """Move element i to ``navigableLocations[index[i]]`` (0 stays), then turn by ``heading[i]`` and tilt
        by ``elevation[i]`` (radians; in discretized mode only the sign counts: one 30 degree step)."""
        if not self.initialized or not self._started:
            raise RuntimeError("newEpisode must be called before makeAction")
        b = self.batch_size
        idx = np.asarray(_as_list(index, "index", b), dtype=np.int64)
        dh = np.asarray(_as_list(heading, "heading", b), dtype=np.float64)
        de = np.asarray(_as_list(elevation, "elevation", b), dtype=np.float64)
        nav = self._nav
        counts = np.diff(nav.start) + 1  # + the current location
        bad = np.flatnonzero((idx < 0) | (idx >= counts))
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"Invalid action index {int(idx[i])}: episode {i} at {self.edges.ids[self._node[i]]} "
                             f"(scan {self._scan[i]}) has {int(counts[i])} navigable locations "
                             f"(0 stays, 1..{int(counts[i]) - 1} move)")
        move = np.flatnonzero(idx > 0)
        if len(move):
            self._node = self._node.copy()
            self._node[move] = nav.target[nav.start[move] + idx[move] - 1]
        self._step += 1
        if self.discretize_views:  # only the sign of the change counts
            dh = np.sign(dh) * HEADING_INCREMENT
            de = np.sign(de) * ELEVATION_INCREMENT
        self._set_heading_elevation(self._heading + dh, self._elevation + de)
        self._populate_navigable()

    def getState(self) -> list[SimState]:  # noqa: N802
        """One state per batch element (empty before ``initialize``, as MatterSim)."""
        if not self.initialized:
            return []
        if self._states is None:
            self._states = self._build_states()
        return list(self._states)

    # ------------------------------------------------------------------ internals
    def _set_heading_elevation(self, heading: np.ndarray, elevation: np.ndarray) -> None:
        """Simulator::setHeadingElevation: wrap heading into [0, 2pi], then snap (discretized) or clamp."""
        if self.discretize_views:
            step = snap_heading_index(heading)
            level = snap_elevation_index(elevation)
            self._heading = step * HEADING_INCREMENT
            self._elevation = np.array(ELEVATIONS)[level]
            self._view_index = step + HEADING_COUNT * level
        else:
            self._heading = wrap_heading(heading)
            self._elevation = np.maximum(np.minimum(elevation, self.max_elevation), self.min_elevation)

    def _populate_navigable(self) -> None:
        """Simulator::populateNavigable for the whole batch: gather each element's edges, test the field of
        view, compute the relative angles and sort by angular distance (stable: ties keep graph order, as
        libstdc++'s std::sort does for the at most 14 locations a real viewpoint has)."""
        w = self.edges
        b = self.batch_size
        first = w.offsets[self._node]
        counts = w.offsets[self._node + 1] - first
        total = int(counts.sum())
        element = np.repeat(np.arange(b), counts)
        seg_start = np.cumsum(counts) - counts
        edge = np.arange(total) + np.repeat(first - seg_start, counts)
        cx, cy = camera_directions(self._heading.tolist())
        cxe, cye = cx[element], cy[element]
        if self.restricted_navigation:
            keep = visible(w.nx[edge], w.ny[edge], cxe, cye, cos_half_hfov(self.vfov, self.width, self.height))
            edge, element, cxe, cye = edge[keep], element[keep], cxe[keep], cye[keep]
        rel_h = relative_headings(w.dx[edge], w.dy[edge], cxe, cye)
        rel_e = w.elevation[edge] - self._elevation[element]
        key = np.sqrt(rel_h * rel_h + rel_e * rel_e)
        order = np.lexsort((key, element))  # stable within an element
        edge, element = edge[order], element[order]
        start = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(np.bincount(element, minlength=b), out=start[1:])
        self._nav = NavigableBatch(start, w.target[edge], w.target_ix[edge], rel_h[order], rel_e[order],
                                   w.distance[edge], w.ids, w.xyz)
        self._states = None

    def _build_states(self) -> list[SimState]:
        frame = StepFrame(list(self._scan), self._node.tolist(), self._heading.tolist(), self._elevation.tolist(),
                          self._view_index.tolist(), self._step.tolist(), self._rgb, self._depth, self._nav,
                          self._location)
        return [SimState(frame, b) for b in range(self.batch_size)]

    def _location(self, node: int) -> ViewPoint:
        """The current-location ViewPoint of a global node (rel_* all 0), made once and shared."""
        loc = self._locations.get(node)
        if loc is None:
            w = self.edges
            loc = self._locations[node] = ViewPoint(w.ids[node], w.local_ix[node], *w.xyz[node])
        return loc
