"""Navigation metrics as pure functions of a trajectory, the reference path and the scan's graph distances.

Every function takes viewpoint ids (or indices into the scan's list) and a *distance table*: anything with a
``distances`` matrix and an ``index`` mapping viewpoint id -> row, which :class:`envs.kernel.navgraph.NavGraph` is.
Distances are shortest-path lengths on the navigation graph (metres). A trajectory is the list of viewpoints the
agent was at, in order, as the R2R results format records it: one entry per simulator step, so turning in place
repeats a viewpoint.

Where published scorers disagree, the default follows the official one and a keyword selects the other:

============  ==========================================  ============================================
choice        default (source)                            alternative (source)
============  ==========================================  ============================================
success       ``d < 3`` m (R2R ``tasks/R2R/eval.py``,     ``inclusive=True``: ``d <= 3`` (r4r
              EnvDrop, CLIP-ViL, VALAN, DUET)             ``dtw.py``'s SDTW)
SPL length    shortest distance start -> goal (R2R        ``reference_length="gold"``: the gold path's
              ``eval.py``, CLIP-ViL's RxR eval, VALAN)    length (DUET, for RxR's non-shortest paths)
SPL floor     none (R2R ``eval.py``)                      ``floor=0.01`` (EnvDrop, CLIP-ViL, DUET)
DTW repeats   the trajectory as given: a turn in place    ``collapse_repeats=True``: consecutive repeats
              repeats its viewpoint and counts again      collapsed first (what an agent that drops
              (r4r ``dtw.py``, CLIP-ViL's RxR             them from its trajectories, as CLIP-ViL's
              ``eval.py``, DUET: they score the given     RxR agent does, hands the scorer)
              list)
============  ==========================================  ============================================

CLS needs no such switch: with graph distances a repeated viewpoint adds nothing to a path's length or its
coverage, so it equals r4r's CLS (which crashes on repeats) with repeats removed, and DUET's CLS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

import numpy as np

SUCCESS_DISTANCE = 3.0  # metres; R2R's error margin and the d_th of nDTW/SDTW/CLS


class DistanceTable(Protocol):
    """What the metrics need from a scan: all-pairs shortest distances and the row of each viewpoint."""

    distances: np.ndarray  # [N, N] float64 metres
    index: Mapping[str, int]


Path = Sequence[str] | np.ndarray


def as_indices(path: Path, table: DistanceTable) -> np.ndarray:
    """Rows of ``path``'s viewpoints in ``table.distances`` (integer arrays pass through unchanged)."""
    if isinstance(path, np.ndarray) and path.dtype.kind in "iu":
        return path.astype(np.intp, copy=False)
    try:
        return np.fromiter((table.index[vp] for vp in path), dtype=np.intp, count=len(path))
    except KeyError as exc:
        raise ValueError(f"viewpoint {exc.args[0]!r} is not in this scan's graph") from None


def collapse_repeats(ix: np.ndarray) -> np.ndarray:
    """Drop consecutive repeats of a viewpoint (turning in place): ``[a, a, b, b, a] -> [a, b, a]``."""
    if len(ix) < 2:
        return ix
    keep = np.empty(len(ix), dtype=bool)
    keep[0] = True
    np.not_equal(ix[1:], ix[:-1], out=keep[1:])
    return ix[keep]


def _reached(distance: float, threshold: float, inclusive: bool) -> bool:
    return distance <= threshold if inclusive else distance < threshold


# ---------------------------------------------------------------------------------------------- distances
def navigation_error(trajectory: Path, reference: Path, table: DistanceTable) -> float:
    """NE: shortest-path distance from the final viewpoint to the goal (the reference's last viewpoint).

    Anderson et al. 2018, "Vision-and-Language Navigation" (R2R), ``tasks/R2R/eval.py``.
    """
    t, r = as_indices(trajectory, table), as_indices(reference, table)
    return float(table.distances[t[-1], r[-1]])


def oracle_error(trajectory: Path, reference: Path, table: DistanceTable) -> float:
    """Distance to the goal from the trajectory's viewpoint nearest to it (the oracle stopping rule)."""
    t, r = as_indices(trajectory, table), as_indices(reference, table)
    return float(table.distances[t, r[-1]].min())


def success(trajectory: Path, reference: Path, table: DistanceTable, *,
            threshold: float = SUCCESS_DISTANCE, inclusive: bool = False) -> float:
    """SR term: 1.0 if NE < 3 m (R2R ``eval.py``: strictly less), else 0.0. ``inclusive=True`` uses ``<=``."""
    return float(_reached(navigation_error(trajectory, reference, table), threshold, inclusive))


def oracle_success(trajectory: Path, reference: Path, table: DistanceTable, *,
                   threshold: float = SUCCESS_DISTANCE, inclusive: bool = False) -> float:
    """OSR term: 1.0 if any viewpoint of the trajectory is within 3 m of the goal (R2R ``eval.py``), else 0.0."""
    return float(_reached(oracle_error(trajectory, reference, table), threshold, inclusive))


def path_length(path: Path, table: DistanceTable) -> float:
    """TL: summed distances between consecutive viewpoints (repeats add 0), as R2R's ``eval.py`` sums them.

    For a valid trajectory every move is a graph edge, whose shortest distance is the edge's length; use
    :func:`invalid_moves` to reject the others first, as the official scorer does.
    """
    ix = as_indices(path, table)
    if len(ix) < 2:
        return 0.0
    return float(table.distances[ix[:-1], ix[1:]].sum())


def spl(trajectory: Path, reference: Path, table: DistanceTable, *, threshold: float = SUCCESS_DISTANCE,
        inclusive: bool = False, reference_length: Literal["shortest", "gold"] = "shortest",
        floor: float = 0.0) -> float:
    """SPL = S * L / max(TL, L, floor) (Anderson et al. 2018, "On Evaluation of Embodied Navigation Agents").

    ``L`` is the shortest distance from the reference's start to its goal (R2R ``eval.py``) or, with
    ``reference_length="gold"``, the gold path's own length (DUET's choice for RxR, whose paths are not
    shortest). ``floor=0.01`` reproduces EnvDrop/CLIP-ViL/DUET. A zero denominator (start is the goal and
    the agent never moved) scores 0, as VALAN does and as the 0.01 floor gives.
    """
    t, r = as_indices(trajectory, table), as_indices(reference, table)
    if reference_length == "shortest":
        best = float(table.distances[r[0], r[-1]])
    elif reference_length == "gold":
        best = path_length(r, table)
    else:
        raise ValueError(f"reference_length must be 'shortest' or 'gold', not {reference_length!r}")
    s = _reached(float(table.distances[t[-1], r[-1]]), threshold, inclusive)
    denominator = max(path_length(t, table), best, floor)
    return float(s) * best / denominator if denominator > 0 else 0.0


# ---------------------------------------------------------------------------------------------- DTW
def dtw_many(costs: Sequence[np.ndarray]) -> np.ndarray:
    """Exact DTW of many cost matrices at once: ``D[i, j] = C[i, j] + min(D[i-1, j], D[i, j-1], D[i-1, j-1])``.

    ``costs[b]`` is [n_b, m_b] (prediction x reference distances). The matrices are padded into one
    [B, N, M] block and filled one anti-diagonal at a time (every cell of a diagonal depends only on the two
    before it), so the Python loop runs N + M times whatever B is, and each cell gets exactly r4r's
    arithmetic (same minimum, same addition): results are bit-identical to ``r4r/dtw.py``.
    Padding never leaks in, since a cell depends only on cells above and to its left.
    Returns [B] float64 DTW costs (inf where a cost is inf).
    """
    if not costs:
        return np.zeros(0)
    n = np.array([c.shape[0] for c in costs])
    m = np.array([c.shape[1] for c in costs])
    if (n == 0).any() or (m == 0).any():
        raise ValueError("DTW needs non-empty prediction and reference paths")
    b, nmax, mmax = len(costs), int(n.max()), int(m.max())
    cost = np.zeros((b, nmax, mmax))  # (B, N, M)
    for k, c in enumerate(costs):
        cost[k, : c.shape[0], : c.shape[1]] = c
    acc = np.full((b, nmax + 1, mmax + 1), np.inf)  # (B, N+1, M+1); row/column 0 is the empty prefix
    acc[:, 0, 0] = 0.0
    for diag in range(2, nmax + mmax + 1):
        i = np.arange(max(1, diag - mmax), min(nmax, diag - 1) + 1)
        j = diag - i
        best = np.minimum(np.minimum(acc[:, i - 1, j], acc[:, i, j - 1]), acc[:, i - 1, j - 1])
        acc[:, i, j] = cost[:, i - 1, j - 1] + best
    return acc[np.arange(b), n, m]


def dtw_extend(row: np.ndarray | None, cost: np.ndarray) -> np.ndarray:
    """The DTW recursion one trajectory entry at a time: ``row[j]`` is the DTW cost of the trajectory so far
    against the reference prefix ``R[: j + 1]`` (None before the first entry) and ``cost`` [R] the new entry's
    distances to the reference; returns the new row. ``row[-1]`` is :func:`dtw` of the trajectory so far, so
    a reward can follow nDTW step by step at O(|R|) per entry."""
    top = len(cost)
    previous = np.concatenate([[0.0], np.full(top, np.inf)]) if row is None else np.concatenate([[np.inf], row])
    new = np.full(top + 1, np.inf)
    values = cost.tolist()
    for j in range(1, top + 1):
        new[j] = values[j - 1] + min(previous[j], new[j - 1], previous[j - 1])
    return new[1:]


def _dtw_inputs(trajectory: Path, reference: Path, table: DistanceTable,
                collapse: bool) -> tuple[np.ndarray, np.ndarray]:
    t, r = as_indices(trajectory, table), as_indices(reference, table)
    if collapse:
        t = collapse_repeats(t)
    return table.distances[t[:, None], r], r


def dtw(trajectory: Path, reference: Path, table: DistanceTable, *, collapse_repeats: bool = False) -> float:
    """DTW cost between the trajectory and the reference path, with graph distances as the local cost.

    Magalhaes et al. 2019, "Effective and General Evaluation for Instruction Conditioned Navigation using
    Dynamic Time Warping"; ``r4r/dtw.py``. See the module docstring on ``collapse_repeats``.
    """
    cost, _ = _dtw_inputs(trajectory, reference, table, collapse_repeats)
    return float(dtw_many([cost])[0])


def ndtw(trajectory: Path, reference: Path, table: DistanceTable, *, threshold: float = SUCCESS_DISTANCE,
         collapse_repeats: bool = False) -> float:
    """nDTW = exp(-DTW(R, Q) / (|R| * d_th)), |R| the reference's number of viewpoints (Magalhaes et al. 2019)."""
    cost, r = _dtw_inputs(trajectory, reference, table, collapse_repeats)
    return float(np.exp(-dtw_many([cost])[0] / (len(r) * threshold)))


def sdtw(trajectory: Path, reference: Path, table: DistanceTable, *, threshold: float = SUCCESS_DISTANCE,
         inclusive: bool = False, collapse_repeats: bool = False) -> float:
    """SDTW = success x nDTW (Magalhaes et al. 2019).

    Success is ``NE < 3`` by default, the same test as SR (VALAN, CLIP-ViL, DUET), so SDTW <= SR always;
    r4r's ``dtw.py`` uses ``<=``: pass ``inclusive=True`` for it.
    """
    s = success(trajectory, reference, table, threshold=threshold, inclusive=inclusive)
    return s * ndtw(trajectory, reference, table, threshold=threshold, collapse_repeats=collapse_repeats)


def cls(trajectory: Path, reference: Path, table: DistanceTable, *, threshold: float = SUCCESS_DISTANCE) -> float:
    """CLS = PC * LS (Jain et al. 2019, "Stay on the Path: Instruction Fidelity in VLN"; ``r4r/cls.py``).

    PC = mean over reference viewpoints r of exp(-min_q d(r, q) / d_th); EPL = PC * PL(R);
    LS = EPL / (EPL + |EPL - PL(Q)|), path lengths PL with graph distances. When EPL and PL(Q) are both 0
    (a one-viewpoint reference and an agent that never moved) the lengths agree, so LS = 1 (VALAN).
    """
    t, r = as_indices(trajectory, table), as_indices(reference, table)
    nearest = table.distances[r[:, None], t].min(axis=1)  # (R,) each reference viewpoint to the trajectory
    return _cls(nearest, path_length(r, table), path_length(t, table), threshold)


def _cls(nearest: np.ndarray, reference_length: float, walked: float, threshold: float) -> float:
    coverage = float(np.exp(-nearest / threshold).mean())
    expected = coverage * reference_length
    denominator = expected + abs(expected - walked)
    return coverage * (expected / denominator if denominator > 0 else 1.0)


# ---------------------------------------------------------------------------------------------- checks
def invalid_moves(trajectory: Path, table: DistanceTable) -> list[tuple[int, int, int]]:
    """Steps ``(step, from_ix, to_ix)`` that jump between two different viewpoints not joined by an edge.

    ``table`` must also have NavGraph's ``unobstructed`` [N, N] bool matrix. The R2R scorer rejects such
    trajectories, since their length cannot be measured on the graph.
    """
    ix = as_indices(trajectory, table)
    a, b = ix[:-1], ix[1:]
    unob = table.unobstructed  # type: ignore[attr-defined]
    bad = (a != b) & ~(unob[a, b] | unob[b, a])
    return [(int(s) + 1, int(a[s]), int(b[s])) for s in np.flatnonzero(bad)]


# ---------------------------------------------------------------------------------------------- episodes
@dataclass(frozen=True)
class MetricOptions:
    """The choices where published scorers differ (see the module docstring); defaults follow the official ones."""

    threshold: float = SUCCESS_DISTANCE
    """Success distance in metres."""
    inclusive: bool = False
    """Success (SR, OSR, SPL) as ``NE <= threshold`` instead of R2R's ``NE < threshold``."""
    sdtw_inclusive: bool = False
    """SDTW's success as ``<=`` (r4r) instead of the same ``<`` as SR."""
    spl_reference: Literal["shortest", "gold"] = "shortest"
    """SPL's reference length: the shortest distance (R2R) or the gold path's length."""
    spl_floor: float = 0.0
    """Lower bound of SPL's denominator (0.01 in EnvDrop/CLIP-ViL/DUET)."""
    collapse_repeats: bool = False
    """Collapse consecutive repeated viewpoints before DTW (nDTW, SDTW); the official scorers do not."""


METRIC_KEYS = ("nav_error", "oracle_error", "success", "oracle_success", "length", "shortest", "spl",
               "dtw", "ndtw", "sdtw", "cls", "steps", "moves")


def score_episode(trajectory: Path, reference: Path, table: DistanceTable,
                  options: MetricOptions = MetricOptions()) -> dict[str, float]:
    """All metrics of one episode, keyed by :data:`METRIC_KEYS`.

    ``steps`` is the number of recorded simulator steps, ``len(trajectory) - 1`` (R2R's ``trajectory_steps``:
    turns count); ``moves`` is the number of steps that changed viewpoint. ``shortest`` is the shortest
    distance from the reference's start to its goal.
    """
    return score_episodes([trajectory], [reference], [table], options)[0]


def score_episodes(trajectories: Sequence[Path], references: Sequence[Path], tables: Sequence[DistanceTable],
                   options: MetricOptions = MetricOptions()) -> list[dict[str, float]]:
    """:func:`score_episode` for many episodes (each with its scan's table), with DTW batched for speed."""
    if not (len(trajectories) == len(references) == len(tables)):
        raise ValueError("trajectories, references and tables must have the same length")
    opt = options
    rows: list[dict[str, float]] = []
    costs: list[np.ndarray] = []
    for traj, ref, table in zip(trajectories, references, tables):
        t, r = as_indices(traj, table), as_indices(ref, table)
        if len(t) == 0 or len(r) == 0:
            raise ValueError("trajectory and reference must each hold at least one viewpoint")
        d = table.distances
        dt = collapse_repeats(t)  # the same viewpoints: nearest distances and lengths do not change
        cost = d[dt[:, None], r]  # (T', R) trajectory x reference distances
        ne, oe = float(cost[-1, -1]), float(cost[:, -1].min())
        walked = float(d[dt[:-1], dt[1:]].sum())
        gold = float(d[r[:-1], r[1:]].sum())
        shortest = float(d[r[0], r[-1]])
        best = shortest if opt.spl_reference == "shortest" else gold
        s = _reached(ne, opt.threshold, opt.inclusive)
        denominator = max(walked, best, opt.spl_floor)
        costs.append(cost if opt.collapse_repeats else d[t[:, None], r])
        rows.append({
            "nav_error": ne,
            "oracle_error": oe,
            "success": float(s),
            "oracle_success": float(_reached(oe, opt.threshold, opt.inclusive)),
            "length": walked,
            "shortest": shortest,
            "spl": float(s) * best / denominator if denominator > 0 else 0.0,
            "cls": _cls(cost.min(axis=0), gold, walked, opt.threshold),
            "steps": float(len(t) - 1),
            "moves": float(len(dt) - 1),
            "_sdtw_success": float(_reached(ne, opt.threshold, opt.sdtw_inclusive)),
            "_ref_len": float(len(r)),
        })
    for row, cost in zip(rows, dtw_many(costs)):
        nd = float(np.exp(-cost / (row.pop("_ref_len") * opt.threshold)))
        row["dtw"], row["ndtw"], row["sdtw"] = float(cost), nd, row.pop("_sdtw_success") * nd
    return [{k: row[k] for k in METRIC_KEYS} for row in rows]


def aggregate(scores: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of every metric over episodes (rates stay fractions in [0, 1]), plus ``count``.

    An empty input gives ``count`` 0 and NaN means, so a missing language shows up rather than crashing.
    """
    scores = list(scores)
    out = {k: float(np.mean([s[k] for s in scores])) if scores else float("nan") for k in METRIC_KEYS}
    out["count"] = len(scores)
    return out


def options_dict(options: MetricOptions) -> dict:
    """The options as a plain dict (for writing next to results)."""
    return asdict(options)
