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
from itertools import chain
from pathlib import Path

import numpy as np

from envs.datadir import DataError, data_error, read_json
from envs.validate import NUMBER, check_number, first_duplicate, first_nonfinite, shown

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
        ids, poses, included, unobstructed, heights = check_records(records, source)
        n = len(ids)
        self.ids: list[str] = ids
        self.index: dict[str, int] = {vp: i for i, vp in enumerate(self.ids)}
        self.poses = poses.astype(np.float32).reshape(n, 4, 4)
        self.positions = np.ascontiguousarray(self.poses[:, :3, 3])
        self.heights = heights.astype(np.float32)
        self.included = included
        self.unobstructed = unobstructed & self.included[:, None] & self.included[None, :]
        np.fill_diagonal(self.unobstructed, False)
        self._compute_shortest_paths()

    # ----------------------------------------------------------------------------------------------
    def _compute_shortest_paths(self) -> None:
        n = len(self.ids)
        edges = self.unobstructed | self.unobstructed.T  # undirected, as networkx.Graph.add_edge builds it
        weights = move_lengths(self.positions[:, None, :], self.positions[None, :, :])
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

    def share_tables(self, distances: np.ndarray, next_hops: np.ndarray) -> None:
        """Hold the shortest-path matrices as views of equal read-only copies (a split's flat tables, N * N
        each), so that each scan's are in memory once; kept as they are if they already are views of another
        split's."""
        if self.distances.base is None:
            n = len(self.ids)
            self.distances, self.next_hop_table = distances.reshape(n, n), next_hops.reshape(n, n)

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
            total += self.edge_length(a, b)
        return total

    def edge_length(self, a: str, b: str) -> float:
        """Euclidean length of the move ``a`` -> ``b``, computed as the shortest paths' edge weights are (float64,
        bit for bit); not checked to be an edge. Pairs are computed when asked: an N x N table of them would
        cost as much memory as the distances."""
        return float(move_lengths(self.positions[self.ix(a)], self.positions[self.ix(b)]))


# ---------------------------------------------------------------------------------------------- validation
RESTORE = "Restore the file from the Matterport3DSimulator connectivity download"


def check_records(records: list[dict], source: str | Path) -> tuple[list[str], np.ndarray, np.ndarray,
                                                                      np.ndarray, np.ndarray]:
    """Check a connectivity file's records; returns ids, poses [N, 16] float64, included [N] bool,
    unobstructed [N, N] bool and heights [N] float64.

    Vectorised on the valid path (numpy builds the arrays and checks their kind, shape and finiteness in one go);
    only a failure walks the records to name the first bad one, its id and field.
    """
    n = len(records)
    if n == 0:
        raise data_error(source, "holds no viewpoints (an empty list)", RESTORE)
    for i, rec in enumerate(records):
        missing = [f for f in _FIELDS if f not in rec]
        if missing:
            raise data_error(source, f"record {i} lacks field(s) {missing}",
                             "Each record needs image_id, pose, included and unobstructed")
    ids = [rec["image_id"] for rec in records]
    for i, vp in enumerate(ids):
        if not isinstance(vp, str) or not vp.strip():
            raise data_error(source, f"record {i} field 'image_id' is {shown(vp)}, expected a viewpoint id string",
                             RESTORE)
    repeat = first_duplicate(ids)
    if repeat is not None:
        raise data_error(source, f"record {repeat[1]} field 'image_id' repeats record {repeat[0]} ({ids[repeat[0]]})",
                         "Each viewpoint must appear once; " + RESTORE.lower())
    poses = _numbers(records, source, "pose", 16, "values (a row-major 4x4 matrix)")
    heights = np.asarray([rec.get("height", 0.0) for rec in records])
    if heights.dtype.kind not in "iuf" or heights.dtype == bool or first_nonfinite(heights) is not None:
        for i, rec in enumerate(records):
            check_number(source, _record(i, rec), rec, "height", optional=True, fix=RESTORE)
    for i, rec in enumerate(records):
        if not isinstance(rec["included"], bool):
            raise data_error(source, f"{_record(i, rec)} field 'included' is {shown(rec['included'])}, expected true "
                             "or false", RESTORE)
    included = np.fromiter((rec["included"] for rec in records), dtype=bool, count=n)
    if not included.any():
        raise data_error(source, "has no included viewpoint (every record has 'included': false)", RESTORE)
    unobstructed = _flags(records, source, "unobstructed", n)
    if any("visible" in rec for rec in records):
        _flags(records, source, "visible", n, build=False)
    return ids, poses, included, unobstructed, heights.astype(np.float64)


def _record(i: int, rec: dict) -> str:
    return f"record {i} ({rec['image_id']})"


def _numbers(records: list[dict], source: str | Path, name: str, size: int, what: str) -> np.ndarray:
    """Field ``name`` of every record as a float64 [N, size] array of finite numbers."""
    rows = [rec[name] for rec in records]
    if all(type(row) is list and len(row) == size for row in rows) \
            and set(map(type, chain.from_iterable(rows))) <= {int, float}:  # not bool, not str: types first
        values = np.asarray(rows, dtype=np.float64)
        if first_nonfinite(values) is None:
            return values
    for i, (rec, value) in enumerate(zip(records, rows)):
        if not isinstance(value, list) or len(value) != size:
            count = f"has {len(value)} values" if isinstance(value, list) else f"is {shown(value)}"
            raise data_error(source, f"{_record(i, rec)}: {name!r} {count}, expected {size} {what}", RESTORE)
        for k, x in enumerate(value):
            if not isinstance(x, NUMBER) or isinstance(x, bool) or not math.isfinite(x):
                raise data_error(source, f"{_record(i, rec)} field {name!r}[{k}] is {shown(x)}, expected a finite "
                                 "number", RESTORE)
    raise AssertionError("unreachable: the array check failed but no record is wrong")


def _flags(records: list[dict], source: str | Path, name: str, n: int, build: bool = True) -> np.ndarray | None:
    """Field ``name`` of every record: n true/false flags each (0 and 1 pass too), as a bool [N, N] array; with
    ``build`` False only the lists and their lengths are checked (for ``visible``, which nothing reads)."""
    rows = [rec.get(name) for rec in records]
    if all(type(row) is list and len(row) == n for row in rows):
        if not build:
            return None
        try:  # bytes() takes exactly the ints 0..255, bools among them: a type check at C speed
            flat = np.frombuffer(bytes(chain.from_iterable(rows)), dtype=np.uint8)
        except (TypeError, ValueError):
            flat = None
        if flat is not None and flat.max(initial=0) <= 1:
            return flat.view(bool).reshape(n, n)
    for i, (rec, value) in enumerate(zip(records, rows)):
        if not isinstance(value, list) or len(value) != n:
            count = f"has {len(value)} entries" if isinstance(value, list) else f"is {shown(value)}"
            raise data_error(source, f"{_record(i, rec)}: {name!r} {count}, expected {n} (one per viewpoint)", RESTORE)
        for k, x in enumerate(value):
            if type(x) not in (bool, int) or x not in (0, 1):
                raise data_error(source, f"{_record(i, rec)} field {name!r}[{k}] is {shown(x)}, expected true or "
                                 "false", RESTORE)
    raise AssertionError("unreachable: the array check failed but no record is wrong")


# ---------------------------------------------------------------------------------------------- files
def read_scans_txt(connectivity_dir: str | Path) -> list[str]:
    """The scans listed in ``scans.txt`` (MatterSim loads every one it names), checked: none empty, none twice."""
    path = Path(connectivity_dir) / "scans.txt"
    if not path.exists():
        raise data_error(path, "scans.txt not found", "The connectivity folder must list its scans, one per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise data_error(path, f"is not UTF-8 text ({err.reason})", "List one scan id per line") from None
    scans = [line.strip() for line in lines if line.strip()]
    if not scans:
        raise data_error(path, "lists no scans", "List one scan id per line, e.g. 17DRP5sb8fy")
    for scan in scans:
        if any(c.isspace() or c in "/\\" for c in scan) or scan.endswith(".json"):
            line = 1 + next(k for k, text in enumerate(lines) if text.strip() == scan)
            raise data_error(path, f"line {line} is {shown(scan)}, not a scan id",
                             "List one scan id per line (e.g. 17DRP5sb8fy), without paths or suffixes")
    repeat = first_duplicate(scans)
    if repeat is not None:
        raise data_error(path, f"lists scan {scans[repeat[1]]} twice", "List each scan once")
    return scans


def load_records(path: Path) -> list[dict]:
    """Read a connectivity file, turning JSON and shape errors into one clear :class:`DataError`."""
    if not path.exists():
        raise data_error(path, "connectivity file not found", "Is the scan id right, and is it listed in scans.txt?")
    records = read_json(path, "connectivity file", RESTORE)
    if not isinstance(records, list):
        raise data_error(path, f"is a JSON {type(records).__name__}, expected a list of viewpoint records", RESTORE)
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise data_error(path, f"record {i} is {shown(rec)}, expected an object", RESTORE)
    return records


@lru_cache(maxsize=None)
def _load_cached(connectivity_dir: str, scan: str) -> NavGraph:
    path = Path(connectivity_dir) / f"{scan}_connectivity.json"
    return NavGraph(scan, load_records(path), source=path)


def load_graph(connectivity_dir: str | Path, scan: str) -> NavGraph:
    """Load (once per process) the graph of ``scan`` from ``connectivity_dir``."""
    return _load_cached(str(Path(connectivity_dir).resolve()), scan)


def move_lengths(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between positions ``a`` and ``b`` (..., 3), in float64: the graphs' edge weights."""
    return np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=-1)


def load_graphs(connectivity_dir: str | Path, scans: list[str] | None = None) -> dict[str, NavGraph]:
    """Load the graphs of ``scans`` (default: every scan in ``scans.txt``)."""
    if scans is None:
        scans = read_scans_txt(connectivity_dir)
        for scan in scans:
            if not (Path(connectivity_dir) / f"{scan}_connectivity.json").exists():
                raise data_error(Path(connectivity_dir) / "scans.txt", f"lists scan {scan}, but {scan}_connectivity.json "
                                 "is not beside it", "Restore that file or remove the scan from scans.txt")
    return {scan: load_graph(connectivity_dir, scan) for scan in scans}


def heading_elevation_to(src: np.ndarray, dst: np.ndarray) -> tuple[float, float]:
    """Absolute heading (clockwise from +y) and elevation of the direction from ``src`` to ``dst``."""
    dx, dy, dz = (float(v) for v in (dst - src))
    return math.atan2(dx, dy), math.atan2(dz, math.hypot(dx, dy))
