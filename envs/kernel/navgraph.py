"""Navigation graphs of Matterport3D scans, loaded from the connectivity files MatterSim reads.

A scan's ``{scan}_connectivity.json`` is a list with one record per panorama (viewpoint): ``image_id``,
``pose`` (row-major 4x4, position at indices 3, 7, 11, z up), ``included``, ``visible``, ``unobstructed``
and ``height``. Edges join included viewpoints whose ``unobstructed`` flag is set, weighted by the 3D
Euclidean distance of their positions (as R2R's ``eval.py`` and EnvDrop build their networkx graphs).

All-pairs shortest distances and next hops are computed once per scan with a vectorised Floyd-Warshall in
float64 and cached, so the teacher action and every metric are table look-ups.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from envs.datadir import DataError, data_error, read_json

_FIELDS = ("image_id", "pose", "included", "unobstructed")


class NavGraph:
    """The navigation graph of one scan.

    Attributes:
        scan: the scan id.
        ids: every viewpoint id in the file's order (excluded ones too); ``ix`` indexes this list.
        index: viewpoint id -> ix.
        poses: [N, 4, 4] float32 pose matrices, as MatterSim reads them.
        positions: [N, 3] float32 positions (pose[:3, 3]).
        heights: [N] camera heights above the floor (0 when the file has none).
        included: [N] bool.
        unobstructed: [N, N] bool, the file's flags restricted to included viewpoints (directed, as MatterSim
            reads them: row i lists what can be reached from i).
        distances: [N, N] float64 shortest-path distances (inf where unreachable).
        next_hop_table: [N, N] int32 ix of the next viewpoint on a shortest path (-1 where unreachable).
    """

    def __init__(self, scan: str, records: list[dict], source: str | Path = "<memory>") -> None:
        self.scan = scan
        self.source = str(source)
        n = len(records)
        for i, rec in enumerate(records):
            missing = [f for f in _FIELDS if f not in rec]
            if missing:
                raise data_error(source, f"record {i} lacks field(s) {missing}",
                                 "Each record needs image_id, pose, included and unobstructed")
            if len(rec["pose"]) != 16:
                raise data_error(source, f"record {i} ({rec['image_id']}): 'pose' has {len(rec['pose'])} "
                                 "values, expected 16 (a row-major 4x4 matrix)")
            if len(rec["unobstructed"]) != n:
                raise data_error(source, f"record {i} ({rec['image_id']}): 'unobstructed' has "
                                 f"{len(rec['unobstructed'])} entries, expected {n} (one per viewpoint)")
        self.ids: list[str] = [rec["image_id"] for rec in records]
        self.index: dict[str, int] = {vp: i for i, vp in enumerate(self.ids)}
        if len(self.index) != n:
            raise data_error(source, "duplicate 'image_id' values", "Each viewpoint must appear once")
        self.poses = np.asarray([rec["pose"] for rec in records], dtype=np.float32).reshape(n, 4, 4)
        self.positions = np.ascontiguousarray(self.poses[:, :3, 3])
        self.heights = np.asarray([rec.get("height", 0.0) for rec in records], dtype=np.float32)
        self.included = np.asarray([bool(rec["included"]) for rec in records], dtype=bool)
        unob = np.asarray([rec["unobstructed"] for rec in records], dtype=bool).reshape(n, n)
        self.unobstructed = unob & self.included[:, None] & self.included[None, :]
        np.fill_diagonal(self.unobstructed, False)
        self._compute_shortest_paths()

    # ----------------------------------------------------------------------------------------------
    def _compute_shortest_paths(self) -> None:
        n = len(self.ids)
        edges = self.unobstructed | self.unobstructed.T  # undirected, as networkx.Graph.add_edge builds it
        pos = self.positions.astype(np.float64)
        weights = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
        dist = np.where(edges, weights, np.inf)
        np.fill_diagonal(dist, 0.0)
        nxt = np.where(edges, np.arange(n)[None, :], -1).astype(np.int32)
        np.fill_diagonal(nxt, np.arange(n))
        for k in range(n):
            through = dist[:, k : k + 1] + dist[k : k + 1, :]
            better = through < dist
            if better.any():
                dist = np.where(better, through, dist)
                nxt = np.where(better, nxt[:, k : k + 1], nxt)
        self.distances = dist
        self.next_hop_table = nxt
        self.edge_lengths = np.where(edges, weights, 0.0)

    # ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, viewpoint: str) -> bool:
        return viewpoint in self.index

    def ix(self, viewpoint: str) -> int:
        """Index of ``viewpoint`` in the scan's list; a clear error if the scan has no such viewpoint."""
        try:
            return self.index[viewpoint]
        except KeyError:
            raise DataError(f"scan {self.scan} has no viewpoint {viewpoint!r} (graph {self.source})") from None

    @property
    def included_ids(self) -> list[str]:
        return [vp for vp, inc in zip(self.ids, self.included) if inc]

    def position(self, viewpoint: str) -> np.ndarray:
        return self.positions[self.ix(viewpoint)]

    def neighbours(self, viewpoint: str) -> list[str]:
        """Viewpoints reachable in one move from ``viewpoint``, in the file's order."""
        row = self.unobstructed[self.ix(viewpoint)]
        return [self.ids[j] for j in np.flatnonzero(row)]

    def is_edge(self, a: str, b: str) -> bool:
        """True if ``a`` and ``b`` are joined by an edge of the (undirected) graph."""
        i, j = self.ix(a), self.ix(b)
        return bool(self.unobstructed[i, j] or self.unobstructed[j, i])

    def distance(self, a: str, b: str) -> float:
        """Shortest-path distance in metres (inf if unreachable)."""
        return float(self.distances[self.ix(a), self.ix(b)])

    def next_hop(self, a: str, b: str) -> str:
        """The next viewpoint on a shortest path from ``a`` to ``b`` (``a`` itself when ``a == b``)."""
        hop = int(self.next_hop_table[self.ix(a), self.ix(b)])
        if hop < 0:
            raise DataError(f"scan {self.scan}: {b} is unreachable from {a}")
        return self.ids[hop]

    def shortest_path(self, a: str, b: str) -> list[str]:
        """Viewpoints of a shortest path from ``a`` to ``b``, both ends included."""
        path = [a]
        while path[-1] != b:
            path.append(self.next_hop(path[-1], b))
        return path

    def path_length(self, path: list[str]) -> float:
        """Summed edge lengths along ``path`` (repeated viewpoints add nothing). Raises on a non-edge move."""
        total = 0.0
        for a, b in zip(path[:-1], path[1:]):
            if a == b:
                continue
            if not self.is_edge(a, b):
                raise DataError(f"scan {self.scan}: {a} -> {b} is not an edge of the navigation graph")
            total += float(self.edge_lengths[self.ix(a), self.ix(b)])
        return total


def read_scans_txt(connectivity_dir: str | Path) -> list[str]:
    """The scans listed in ``scans.txt`` (MatterSim loads every one it names)."""
    path = Path(connectivity_dir) / "scans.txt"
    if not path.exists():
        raise data_error(path, "scans.txt not found", "The connectivity folder must list its scans, one per line")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_records(path: Path) -> list[dict]:
    """Read a connectivity file, turning JSON and shape errors into one clear :class:`DataError`."""
    if not path.exists():
        raise data_error(path, "connectivity file not found", "Is the scan id right, and is it listed in scans.txt?")
    records = read_json(path, "connectivity file",
                        "Restore the file from the Matterport3DSimulator connectivity download")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise data_error(path, "expected a JSON list of viewpoint records")
    return records


@lru_cache(maxsize=None)
def _load_cached(connectivity_dir: str, scan: str) -> NavGraph:
    path = Path(connectivity_dir) / f"{scan}_connectivity.json"
    return NavGraph(scan, load_records(path), source=path)


def load_graph(connectivity_dir: str | Path, scan: str) -> NavGraph:
    """Load (once per process) the graph of ``scan`` from ``connectivity_dir``."""
    return _load_cached(str(Path(connectivity_dir).resolve()), scan)


def load_graphs(connectivity_dir: str | Path, scans: list[str] | None = None) -> dict[str, NavGraph]:
    """Load the graphs of ``scans`` (default: every scan in ``scans.txt``)."""
    if scans is None:
        scans = read_scans_txt(connectivity_dir)
    return {scan: load_graph(connectivity_dir, scan) for scan in scans}


def heading_elevation_to(src: np.ndarray, dst: np.ndarray) -> tuple[float, float]:
    """Absolute heading (clockwise from +y) and elevation of the direction from ``src`` to ``dst``."""
    dx, dy, dz = (float(v) for v in (dst - src))
    return math.atan2(dx, dy), math.atan2(dz, math.hypot(dx, dy))
