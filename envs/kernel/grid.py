"""MatterSim's discretized viewing grid and the R2R camera: defined here once, for the whole toolkit.

Discretized views (``setDiscretizedViewingAngles(True)``): 12 headings 30 degrees apart (clockwise from +y)
and 3 elevations (-30, 0, +30 degrees). View ``ix = heading_index + 12 * elevation_index`` (0-11 look down,
12-23 level, 24-35 up); panoramic features, the renderer, the candidates and the env all use this order.
Headings and elevations snap to the grid as MatterSim's ``setHeadingElevation`` does.

The R2R camera (``tasks/R2R/env.py``, EnvDrop, CLIP-ViL): 640x480 pixels, 60 degree vertical field of view.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

HEADING_COUNT = 12
HEADING_INCREMENT = math.pi * 2.0 / HEADING_COUNT  # MatterSim: M_PI*2.0/headingCount
ELEVATION_INCREMENT = math.pi / 6.0  # MatterSim: M_PI/6.0, the discretized up/down step
ELEVATIONS = (-ELEVATION_INCREMENT, 0.0, ELEVATION_INCREMENT)  # by elevation index: 0 looks down
VIEW_COUNT = HEADING_COUNT * len(ELEVATIONS)  # 36


class Camera(NamedTuple):
    """A pinhole camera: image size in pixels and vertical field of view in radians."""

    width: int
    height: int
    vfov: float


R2R_VFOV_DEGREES = 60  # as feature files record it
R2R_CAMERA = Camera(640, 480, math.radians(R2R_VFOV_DEGREES))


def view_heading(ix: int) -> float:
    """Heading of view ``ix`` (radians): ``(ix % 12) * (2 pi / 12)``."""
    return (ix % HEADING_COUNT) * HEADING_INCREMENT


def view_elevation(ix: int) -> float:
    """Elevation of view ``ix`` (radians): -pi/6 for 0-11, 0 for 12-23, +pi/6 for 24-35."""
    return ELEVATIONS[ix // HEADING_COUNT]


VIEW_HEADINGS = np.array([view_heading(i) for i in range(VIEW_COUNT)])  # [36] float64
VIEW_ELEVATIONS = np.array([view_elevation(i) for i in range(VIEW_COUNT)])  # [36] float64


def wrap_heading(heading: float | np.ndarray) -> np.ndarray:
    """``heading`` (radians) wrapped into [0, 2 pi] as MatterSim's ``setHeadingElevation`` does (C's ``fmod``,
    which keeps the sign of the dividend, then + 2 pi for negatives)."""
    h = np.fmod(np.asarray(heading, dtype=np.float64), math.pi * 2.0)
    return np.where(h < 0.0, h + math.pi * 2.0, h)


def snap_heading_index(heading: float | np.ndarray) -> np.ndarray:
    """The nearest of the 12 headings (index 0..11) to ``heading`` (radians), as MatterSim snaps it: the
    wrapped heading divided by the step and rounded half up (``std::lround``)."""
    ratio = wrap_heading(heading) / HEADING_INCREMENT
    whole = np.floor(ratio)
    step = whole + (ratio - whole >= 0.5)  # std::lround for ratio >= 0 (halves round up, exactly)
    return np.where(step == HEADING_COUNT, 0, step).astype(np.int64)


def snap_elevation_index(elevation: float | np.ndarray) -> np.ndarray:
    """The elevation index (0 down, 1 level, 2 up) MatterSim snaps ``elevation`` (radians) to."""
    e = np.asarray(elevation, dtype=np.float64)
    return np.where(e < -ELEVATION_INCREMENT / 2.0, 0, np.where(e > ELEVATION_INCREMENT / 2.0, 2, 1)).astype(np.int64)
