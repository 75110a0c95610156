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
        self._lists: tuple[list, ...] | None = None
        self._ids = ids  # global node -> viewpoint id
        self._xyz = xyz  # global node -> [x, y, z]

    def count(self, b: int) -> int:
        return int(self.start[b + 1] - self.start[b])

    def neighbours(self, b: int) -> list[ViewPoint]:
        """Element ``b``'s navigable neighbours (current location excluded), as fresh ViewPoint objects."""
        if self._lists is None:  # one bulk conversion per step instead of one per attribute access
            self._lists = (self.start.tolist(), self.target.tolist()) + tuple(c.tolist() for c in self._columns)
        start, target, local_ix, rel_h, rel_e, rel_d = self._lists
        ids, xyz = self._ids, self._xyz
        return [ViewPoint(ids[target[k]], local_ix[k], *xyz[target[k]], rel_h[k], rel_e[k], rel_d[k])
                for k in range(start[b], start[b + 1])]


class SimState:
    """One batch element's state: MatterSim's ``SimState`` (``scanId, step, rgb, depth, location, heading,
    elevation, viewIndex, navigableLocations``).

    ``navigableLocations[0]`` is ``location`` itself; the rest are sorted by angular distance from the image
    centre. ``viewIndex`` is only maintained with discretized viewing angles (0 otherwise, as in MatterSim).
    ``rgb``/``depth`` are MatterSim's blank images (read-only zeros of the camera size): this simulator never
    renders (see :mod:`envs.render` for images).
    """

    __slots__ = ("scanId", "step", "location", "heading", "elevation", "viewIndex", "rgb", "depth",
                 "_batch", "_b", "_nav")

    def __init__(self, scanId: str, step: int, location: ViewPoint | None, heading: float,  # noqa: N803
                 elevation: float, viewIndex: int, rgb: np.ndarray, depth: np.ndarray,  # noqa: N803
                 batch: NavigableBatch | None = None, b: int = 0) -> None:
        self.scanId = scanId
        self.step = step
        self.location = location
        self.heading = heading
        self.elevation = elevation
        self.viewIndex = viewIndex
        self.rgb = rgb
        self.depth = depth
        self._batch = batch
        self._b = b
        self._nav: list[ViewPoint] | None = None

    @property
    def navigableLocations(self) -> list[ViewPoint]:  # noqa: N802 (MatterSim name)
        if self._nav is None:
            if self.location is None or self._batch is None:
                self._nav = []
            else:
                self._nav = [self.location] + self._batch.neighbours(self._b)
        return self._nav

    def __repr__(self) -> str:
        vp = self.location.viewpointId if self.location is not None else None
        return (f"SimState(scanId={self.scanId!r}, viewpoint={vp!r}, step={self.step}, heading={self.heading:.4f}, "
                f"elevation={self.elevation:.4f}, viewIndex={self.viewIndex})")
