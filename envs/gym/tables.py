"""Dense per-viewpoint tables of a split's houses, built once per data directory and split.

Every included viewpoint of the split's scans gets a global row ``g``:

- ``features[feature_row[g]]`` is its [36, D] view-feature block, in a :class:`FeatureBank` that every split of
  the same feature file shares (a training run's train, val and test envs hold each viewpoint once);
- ``cand_*[g, k]`` are its padded panoramic candidates (target row, view index, absolute heading and
  elevation), in EnvDrop's order (:mod:`envs.gym.candidates`);
- the scans' shortest distances and next hops, flattened, answer "how far to the goal" and "which step next"
  for a whole batch with one gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.datadir import DataError
from envs.gym.candidates import build_candidate_index
from envs.kernel.grid import VIEW_COUNT
from envs.kernel.navgraph import NavGraph
from features.layout import feature_key


class FeatureBank:
    """The [36, D] feature blocks of every viewpoint loaded so far from one source, one row each.

    Splits add their viewpoints as they load (:meth:`rows`); a viewpoint already held is not read or stored
    again. A source that knows its size (``layout()`` -> (panoramas, D), with ``fill(keys, out)``: a feature
    file) gets room for all its panoramas reserved at once and reads straight into it: untouched rows of that
    reservation take no memory, and no split's load copies the table, so the peak is the table itself (the
    full real R2R table is 0.97 GB at 640-d float32). Other sources (``table(keys, dtype)``) are appended.
    ``array`` is a view of the rows held, so a table reads it through the bank, never keeps it.
    """

    def __init__(self, source, dim: int, dtype) -> None:
        self.source, self.dtype = source, np.dtype(dtype)
        self._store = np.zeros((0, VIEW_COUNT, dim), dtype=self.dtype)  # [capacity, 36, D]
        self._count = 0
        self.row_of: dict[str, int] = {}

    @property
    def array(self) -> np.ndarray:
        """The rows held so far, [R, 36, D]."""
        return self._store[:self._count]

    @property
    def dim(self) -> int:
        return int(self._store.shape[-1])

    def rows(self, keys: list[str]) -> np.ndarray:
        """The bank rows of ``keys`` (``scan_viewpoint``), loading the missing ones first. A blind bank
        (``source`` None) holds one block of zeros that every key shares."""
        if self.source is None:
            if not self._count:
                self._store, self._count = np.zeros((1, VIEW_COUNT, self.dim), dtype=self.dtype), 1
            return np.zeros(len(keys), dtype=np.int64)
        missing = [k for k in dict.fromkeys(keys) if k not in self.row_of]
        if missing:
            start, end = self._count, self._count + len(missing)
            if hasattr(self.source, "fill"):
                total, dim = self.source.layout()
                self._reserve(end, dim, total)
                self.source.fill(missing, self._store[start:end])
            else:
                block = self.source.table(missing, dtype=self.dtype)  # (M, 36, D')
                self._reserve(end, block.shape[-1])
                self._store[start:end] = block
            self._count = end
            self.row_of.update((k, start + i) for i, k in enumerate(missing))
        return np.array([self.row_of[k] for k in keys], dtype=np.int64)

    def _reserve(self, rows: int, dim: int, hint: int = 0) -> None:
        """Room for ``rows`` rows of ``dim``: at least ``hint`` rows, else double, keeping the rows held."""
        if rows <= len(self._store) and dim == self.dim:
            return
        assert not self._count or dim == self.dim, f"feature size changed from {self.dim} to {dim}"
        grown = np.empty((max(rows, hint, 2 * len(self._store)), VIEW_COUNT, dim), dtype=self.dtype)
        if self._count:
            grown[:self._count] = self._store[:self._count]
        self._store = grown


@dataclass
class ViewpointTables:
    """Dense per-viewpoint arrays for one set of scans (see the module docstring)."""

    graphs: dict[str, NavGraph]
    row_of: dict[tuple[str, str], int]  # (scan, viewpoint) -> global row
    keys: list[tuple[str, str]]  # global row -> (scan, viewpoint)
    scan_of_row: np.ndarray  # [G] int, index into scan_names
    scan_names: list[str]
    local_ix: np.ndarray  # [G] the viewpoint's ix in its scan's graph
    bank: FeatureBank  # the view features, shared with the other splits of the same source
    feature_row: np.ndarray  # [G] each viewpoint's row in bank.array
    cand_target: np.ndarray  # [G, K] global row of the candidate (-1 on padding)
    cand_point: np.ndarray  # [G, K] view index the candidate is seen from
    cand_heading: np.ndarray  # [G, K] absolute heading (radians)
    cand_elevation: np.ndarray  # [G, K] absolute elevation (radians)
    cand_count: np.ndarray  # [G]
    scan_base: np.ndarray  # [S] offset of each scan's block in dist_flat / hop_flat
    scan_size: np.ndarray  # [S] viewpoints (all, excluded too) of each scan
    dist_flat: np.ndarray  # every scan's [N, N] shortest distances, flattened one after another
    hop_flat: np.ndarray  # the same layout, int32: local ix of the next hop on a shortest path (-1 unreachable)

    @property
    def features(self) -> np.ndarray:
        """[R, 36, D] the bank's feature blocks (rows: :attr:`feature_row`)."""
        return self.bank.array

    @property
    def feature_dim(self) -> int:
        return self.bank.dim

    @property
    def max_candidates(self) -> int:
        return int(self.cand_target.shape[1])

    def row(self, scan: str, viewpoint: str) -> int:
        try:
            return self.row_of[(scan, viewpoint)]
        except KeyError:
            raise DataError(f"scan {scan} has no included viewpoint {viewpoint!r}") from None

    def _pair_index(self, rows: np.ndarray, goals: np.ndarray) -> np.ndarray:
        scan = self.scan_of_row[rows]
        return self.scan_base[scan] + self.local_ix[rows] * self.scan_size[scan] + self.local_ix[goals]

    def distances_to(self, rows: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """Shortest-path distances from ``rows`` to ``goals`` (same scan), both [B] global rows."""
        return self.dist_flat[self._pair_index(rows, goals)]

    def next_hops(self, rows: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """Local ix of the next viewpoint on a shortest path from ``rows`` to ``goals`` ([B] global rows)."""
        return self.hop_flat[self._pair_index(rows, goals)]


def build_tables(graphs: dict[str, NavGraph], bank: FeatureBank) -> ViewpointTables:
    """Number the included viewpoints of ``graphs``, find their features in ``bank`` (loading what it does
    not hold yet) and build their padded candidates."""
    scan_names = sorted(graphs)
    keys: list[tuple[str, str]] = []
    scan_of_row, local_ix = [], []
    for s, scan in enumerate(scan_names):
        graph = graphs[scan]
        for ix in np.flatnonzero(graph.included):
            keys.append((scan, graph.ids[ix]))
            scan_of_row.append(s)
            local_ix.append(int(ix))
    row_of = {key: g for g, key in enumerate(keys)}
    feature_row = bank.rows([feature_key(scan, vp) for scan, vp in keys])

    index = build_candidate_index({scan: graphs[scan] for scan in scan_names})
    per_row = [index.for_viewpoint(scan, vp) for scan, vp in keys]
    k_max = max(1, max(len(c) for c in per_row))
    n = len(keys)
    cand_target = np.full((n, k_max), -1, dtype=np.int64)
    cand_point = np.zeros((n, k_max), dtype=np.int64)
    cand_heading = np.zeros((n, k_max), dtype=np.float32)
    cand_elevation = np.zeros((n, k_max), dtype=np.float32)
    cand_count = np.zeros(n, dtype=np.int64)
    for g, ((scan, _), cands) in enumerate(zip(keys, per_row)):
        cand_count[g] = len(cands)
        for k, c in enumerate(cands):
            cand_target[g, k] = row_of[(scan, c.viewpoint_id)]
            cand_point[g, k] = c.point_id
            cand_heading[g, k] = c.heading
            cand_elevation[g, k] = c.elevation
    sizes = np.asarray([len(graphs[scan]) for scan in scan_names], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(sizes**2)[:-1]]).astype(np.int64)
    dist_flat = np.concatenate([graphs[scan].distances.ravel() for scan in scan_names])
    hop_flat = np.concatenate([graphs[scan].next_hop_table.ravel() for scan in scan_names])  # int32
    for flat in (dist_flat, hop_flat):
        flat.flags.writeable = False
    for scan, start, n in zip(scan_names, base.tolist(), sizes.tolist()):
        graphs[scan].share_tables(dist_flat[start:start + n * n], hop_flat[start:start + n * n])
    return ViewpointTables(graphs, row_of, keys, np.asarray(scan_of_row), scan_names, np.asarray(local_ix),
                           bank, feature_row, cand_target, cand_point, cand_heading, cand_elevation, cand_count,
                           base, sizes, dist_flat, hop_flat)
