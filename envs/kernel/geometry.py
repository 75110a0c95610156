"""MatterSim's float32 geometry of the navigation graphs, precomputed once and shared.

MatterSim (``src/lib/MatterSim.cpp``, ``populateNavigable``) decides which neighbours the camera can see and
where they are with glm's ``float`` vectors: positions are read with ``asFloat``, the offset between two
viewpoints, its length, its projection on the floor plane and the normalised direction are all float32, and
the camera's horizontal direction is ``vec3(cos(pi/2 - heading), sin(pi/2 - heading), 0)`` rounded to
float. Only a few quantities are double: the heading and elevation themselves, ``cos(vfov * w / h / 2)``,
``atan2`` of the vertical offset over the horizontal length, and the sort key.

Everything that does not depend on the camera is computed here once per directed edge, in exactly that
arithmetic, so a simulator step or a candidate table only has to combine these arrays with the camera's
direction (see :func:`relative_headings` and :func:`visible`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from envs.kernel.navgraph import NavGraph


@dataclass(frozen=True)
class EdgeGeometry:
    """Per directed edge ``src -> dst`` of one scan (``unobstructed`` and both ends included), CSR by source.

    Edges of source ``i`` are ``offsets[i]:offsets[i + 1]``, in ascending ``dst`` order (the order of
    MatterSim's ``adjacentViewpointIndices``).
    """

    offsets: np.ndarray  # [N + 1] int64
    src: np.ndarray  # [E] int64 local ix
    dst: np.ndarray  # [E] int64 local ix
    dx: np.ndarray  # [E] float32 horizontal offset (target_dir.x after z = 0)
    dy: np.ndarray  # [E] float32
    nx: np.ndarray  # [E] float32 glm::normalize of the horizontal offset (NaN when it is zero)
    ny: np.ndarray  # [E] float32
    distance: np.ndarray  # [E] float64 value of the float32 3D length (rel_distance)
    elevation: np.ndarray  # [E] float64 atan2(dz, horizontal length): absolute elevation of dst


@lru_cache(maxsize=None)
def edge_geometry(graph: NavGraph) -> EdgeGeometry:
    """The float32 edge table of ``graph`` (cached per graph object; graphs are cached by ``load_graph``)."""
    n = len(graph.ids)
    src, dst = np.nonzero(graph.unobstructed)  # row-major: grouped by src, dst ascending
    src = src.astype(np.int64)
    dst = dst.astype(np.int64)
    pos = graph.positions  # [N, 3] float32, as MatterSim's asFloat
    d = pos[dst] - pos[src]  # float32 subtraction, as glm::vec3
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    zero = np.float32(0.0)
    # glm::dot(v, v) sums the element products left to right: (x*x + y*y) + z*z, all in float.
    length3 = np.sqrt((dx * dx + dy * dy) + dz * dz)  # rel_distance = glm::length(target_dir)
    horiz_sq = (dx * dx + dy * dy) + zero * zero  # after target_dir.z = 0
    hlen = np.sqrt(horiz_sq)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.float32(1.0) / hlen  # glm::inversesqrt(x) = 1 / sqrt(x), float
        nx = dx * inv
        ny = dy * inv
    # atan2(double tar_z, glm::length(...)) resolves to the double atan2: computed with libm, per edge.
    elevation = np.array([math.atan2(z, h) for z, h in zip(dz.tolist(), hlen.tolist())], dtype=np.float64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=offsets[1:])
    return EdgeGeometry(offsets, src, dst, np.ascontiguousarray(dx), np.ascontiguousarray(dy),
                        nx.astype(np.float32), ny.astype(np.float32), length3.astype(np.float64), elevation)


def camera_directions(headings: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    """MatterSim's ``camera_horizon_dir``: float32 (x, y) of ``(cos(pi/2 - h), sin(pi/2 - h))``, h in radians.

    The cosine and sine are taken in double with libm (``math``), then rounded to float, as glm::vec3 does.
    """
    adjusted = [math.pi / 2.0 - float(h) for h in headings]
    cx = np.array([math.cos(a) for a in adjusted], dtype=np.float32)
    cy = np.array([math.sin(a) for a in adjusted], dtype=np.float32)
    return cx, cy


def cos_half_hfov(vfov: float, width: int, height: int) -> float:
    """The visibility threshold ``cos(vfov * width / height / 2.0)``, evaluated left to right in double."""
    return math.cos(vfov * width / height / 2.0)


def visible(nx: np.ndarray, ny: np.ndarray, cx: np.ndarray, cy: np.ndarray, threshold: float) -> np.ndarray:
    """MatterSim's field-of-view test ``dot(normed_target_dir, camera_horizon_dir) >= cos_half_hfov``.

    The dot product is float32; the comparison is in double. (Under NumPy 2 a Python float next to a float32
    array would be rounded to float32, so the cast to float64 is explicit.) NaN directions are never visible.
    """
    zero = np.float32(0.0)
    cos_angle = (nx * cx + ny * cy) + zero * zero
    return cos_angle.astype(np.float64) >= np.float64(threshold)


def relative_headings(dx: np.ndarray, dy: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """``rel_heading = atan2(x*cy - y*cx, x*cx + y*cy)``: float32 products and sums, then atan2 in double.

    In MatterSim the arguments are float expressions passed to the unqualified ``atan2`` inside namespace
    ``mattersim``; with GCC's libstdc++ only the C ``double atan2(double, double)`` is visible there, so the
    float arguments are promoted and the result is not rounded to float. (If a build picked ``atan2f``
    instead, results would differ by at most one float ulp, about 2e-7 rad.)
    """
    sin_part = (dx * cy - dy * cx).tolist()
    cos_part = (dx * cx + dy * cy).tolist()
    # libm's atan2, not np.arctan2: NumPy's SIMD loops (AVX-512 here) differ from glibc in the last bit
    # for about 7% of float64 inputs (and 40% of float32 ones).
    return np.array(list(map(math.atan2, sin_part, cos_part)), dtype=np.float64)
