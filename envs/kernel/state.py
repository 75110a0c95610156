"""State objects of the simulator, with the attribute names MatterSim's Python binding exposes.

``Simulator.getState()`` returns one :class:`SimState` per batch element. Its ``navigableLocations`` list is
built on first access (most agents never read it), from arrays the simulator computed for the whole batch.
"""

from __future__ import annotations

import numpy as np


class ViewPoint:
    """A location: MatterSim's ``ViewPoint`` (``viewpointId, ix, x, y, z, rel_heading, rel_elevation,
    rel_distance``). ``rel_*`` are relative to the agent's camera; they are 0 for the current location."""

    __slots__ = ("viewpointId", "ix", "x", "y", "z", "rel_heading", "rel_elevation", "rel_distance")

    def __init__(self, viewpointId: str, ix: int, x: float, y: float, z: float,  # noqa: N803 (MatterSim names)
                 rel_heading: float = 0.0, rel_elevation: float = 0.0, rel_distance: float = 0.0) -> None:
        self.viewpointId = viewpointId
        self.ix = ix
        self.x = x
        self.y = y
        self.z = z
        self.rel_heading = rel_heading
        self.rel_elevation = rel_elevation
        self.rel_distance = rel_distance

    def __repr__(self) -> str:
        return (f"ViewPoint({self.viewpointId!r}, ix={self.ix}, rel_heading={self.rel_heading:.4f}, "
                f"rel_elevation={self.rel_elevation:.4f}, rel_distance={self.rel_distance:.3f})")


class NavigableBatch:
    """The sorted navigable neighbours of every batch element after one step (flat arrays, CSR by element)."""

    def __init__(self, start: np.ndarray, target: np.ndarray, local_ix: np.ndarray, rel_heading: np.ndarray,
                 rel_elevation: np.ndarray, rel_distance: np.ndarray, ids: list[str], xyz: list[list[float]]):
        self.start = start  # [B + 1] int64: element b's neighbours are start[b]:start[b+1]
        self.target = target  # [K] global node of each neighbour, sorted by angular distance per element
        self._columns = (local_ix, rel_heading, rel_elevation, rel_distance)
        self._all: list[ViewPoint] | None = None
        self._start: list[int] = []
        self._ids = ids  # global node -> viewpoint id
        self._xyz = xyz  # global node -> [x, y, z]

    def count(self, b: int) -> int:
        return int(self.start[b + 1] - self.start[b])

    def neighbours(self, b: int) -> list[ViewPoint]:
        """Element ``b``'s navigable neighbours (current location excluded), sorted."""
        if self._all is None:  # one bulk conversion per step: agents read every element's list
            start, target, local_ix, rel_h, rel_e, rel_d = (self.start.tolist(), self.target.tolist(),
                                                           *(c.tolist() for c in self._columns))
            ids, xyz = self._ids, self._xyz
            self._start = start
            self._all = [ViewPoint(ids[t], i, *xyz[t], h, e, d)
                         for t, i, h, e, d in zip(target, local_ix, rel_h, rel_e, rel_d)]
        return self._all[self._start[b]:self._start[b + 1]]


class StepFrame:
    """What every state of one step reads from: per-element Python lists, converted once per step."""

    __slots__ = ("scan", "node", "heading", "elevation", "view_index", "step", "rgb", "depth", "nav", "locations")

    def __init__(self, scan: list[str], node: list[int], heading: list[float], elevation: list[float],
                 view_index: list[int], step: list[int], rgb: np.ndarray, depth: np.ndarray,
                 nav: NavigableBatch | None, locations) -> None:
        self.scan, self.node, self.heading, self.elevation = scan, node, heading, elevation
        self.view_index, self.step, self.rgb, self.depth = view_index, step, rgb, depth
        self.nav = nav
        self.locations = locations  # callable: global node -> the (shared, read-only) ViewPoint of that node


class SimState:
    """One batch element's state: MatterSim's ``SimState`` (``scanId, step, rgb, depth, location, heading,
    elevation, viewIndex, navigableLocations``), read-only as in MatterSim's binding.

    ``navigableLocations[0]`` is ``location`` itself; the rest are sorted by angular distance from the image
    centre. ``viewIndex`` is only maintained with discretized viewing angles (0 otherwise, as in MatterSim).
    ``rgb``/``depth`` are MatterSim's blank images (read-only zeros of the camera size): this simulator never
    renders (see :mod:`envs.kernel.skybox` for images). Attributes are read from the step's arrays on access, so
    building a batch of states costs almost nothing.
    """

    __slots__ = ("_frame", "_b", "_nav")

    def __init__(self, frame: StepFrame, b: int) -> None:
        self._frame = frame
        self._b = b
        self._nav: list[ViewPoint] | None = None

    @property
    def scanId(self) -> str:  # noqa: N802 (MatterSim names)
        return self._frame.scan[self._b]

    @property
    def step(self) -> int:
        return self._frame.step[self._b]

    @property
    def heading(self) -> float:
        return self._frame.heading[self._b]

    @property
    def elevation(self) -> float:
        return self._frame.elevation[self._b]

    @property
    def viewIndex(self) -> int:  # noqa: N802
        return self._frame.view_index[self._b]

    @property
    def rgb(self) -> np.ndarray:
        return self._frame.rgb

    @property
    def depth(self) -> np.ndarray:
        return self._frame.depth

    @property
    def location(self) -> ViewPoint | None:
        node = self._frame.node[self._b]
        return None if node < 0 else self._frame.locations(node)

    @property
    def navigableLocations(self) -> list[ViewPoint]:  # noqa: N802
        nav = self._nav
        if nav is None:
            frame, b = self._frame, self._b
            node = frame.node[b]
            nav = self._nav = [] if node < 0 else [frame.locations(node)] + frame.nav.neighbours(b)
        return nav

    def __repr__(self) -> str:
        vp = self.location.viewpointId if self.location is not None else None
        return (f"SimState(scanId={self.scanId!r}, viewpoint={vp!r}, step={self.step}, heading={self.heading:.4f}, "
                f"elevation={self.elevation:.4f}, viewIndex={self.viewIndex})")
