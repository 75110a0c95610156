"""Metrics against hand-computed values on a tiny hand-made graph, r4r's published doctests, and real graphs."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest

from envs.kernel.navgraph import NavGraph, load_graph
from eval import metrics as M

# A line A-B-C-D-E (2 m apart) on the x axis, F 3 m above E (so d(E, F) is exactly 3), and a C-F shortcut of
# exactly 5 m (a 3-4-5 triangle), which makes the reference C-D-E-F (7 m) longer than the shortest path (5 m).
POSITIONS = {"A": (0, 0), "B": (2, 0), "C": (4, 0), "D": (6, 0), "E": (8, 0), "F": (8, 3)}
EDGES = [("A", "B"), ("B", "C"), ("C", "D"), ("D", "E"), ("E", "F"), ("C", "F")]


def make_graph(positions: dict, edges: list) -> NavGraph:
    ids = list(positions)
    records = []
    for vp in ids:
        x, y = positions[vp]
        pose = [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, 0, 0, 0, 0, 1]
        unob = [(vp, other) in edges or (other, vp) in edges for other in ids]
        records.append({"image_id": vp, "pose": pose, "included": True, "unobstructed": unob, "height": 1.5})
    return NavGraph("tiny", records)


@pytest.fixture(scope="module")
def g() -> NavGraph:
    return make_graph(POSITIONS, EDGES)


def test_graph_distances_are_the_intended_ones(g):
    assert g.distance("A", "C") == 4.0
    assert g.distance("E", "F") == 3.0
    assert g.distance("C", "F") == 5.0
    assert g.distance("A", "F") == 9.0  # through the shortcut, not 11 along the line


def test_stop_at_start(g):
    traj, ref = ["A"], ["A", "B", "C"]
    s = M.score_episode(traj, ref, g)
    assert s["nav_error"] == 4.0 and s["oracle_error"] == 4.0
    assert s["success"] == 0.0 and s["oracle_success"] == 0.0
    assert s["length"] == 0.0 and s["spl"] == 0.0 and s["steps"] == 0 and s["moves"] == 0
    assert s["dtw"] == 6.0  # 0 + 2 + 4: the single viewpoint is matched to every reference viewpoint
    assert s["ndtw"] == pytest.approx(math.exp(-6 / 9))
    assert s["sdtw"] == 0.0
    coverage = (1 + math.exp(-2 / 3) + math.exp(-4 / 3)) / 3
    assert s["cls"] == pytest.approx(coverage * 0.5)  # EPL = 4 PC, PL(Q) = 0 -> LS = 1/2


def test_perfect_path_with_turns_in_place(g):
    traj, ref = ["A", "A", "B", "B", "B", "C"], ["A", "B", "C"]
    s = M.score_episode(traj, ref, g)
    assert (s["nav_error"], s["success"], s["length"], s["spl"]) == (0.0, 1.0, 4.0, 1.0)
    assert (s["dtw"], s["ndtw"], s["sdtw"], s["cls"]) == (0.0, 1.0, 1.0, 1.0)
    assert s["steps"] == 5 and s["moves"] == 2


def test_overshoot_and_return(g):
    traj, ref = ["A", "B", "C", "D", "C"], ["A", "B", "C"]
    s = M.score_episode(traj, ref, g)
    assert s["nav_error"] == 0.0 and s["success"] == 1.0 and s["oracle_success"] == 1.0
    assert s["length"] == 8.0
    assert s["spl"] == 0.5  # 4 / max(8, 4)
    assert s["dtw"] == 2.0  # only D is off the path, 2 m from C
    assert s["ndtw"] == pytest.approx(math.exp(-2 / 9))
    assert s["sdtw"] == pytest.approx(math.exp(-2 / 9))
    assert s["cls"] == 0.5  # PC = 1, EPL = 4, PL(Q) = 8 -> LS = 4 / (4 + 4)


def test_pass_within_3m_but_stop_farther(g):
    traj, ref = ["A", "B", "A"], ["A", "B", "C"]
    s = M.score_episode(traj, ref, g)
    assert s["nav_error"] == 4.0 and s["success"] == 0.0
    assert s["oracle_error"] == 2.0 and s["oracle_success"] == 1.0
    assert s["spl"] == 0.0 and s["sdtw"] == 0.0 and s["length"] == 4.0
    assert s["dtw"] == 4.0  # worked by hand: D[3, 3] = 4 + min(2, 2, 0)
    coverage = (2 + math.exp(-2 / 3)) / 3
    assert s["cls"] == pytest.approx(coverage**2)  # LS = EPL / PL(Q) = PC when EPL < PL(Q) = 4


def test_exactly_3m_is_a_failure_unless_inclusive(g):
    traj, ref = ["D", "E"], ["D", "E", "F"]
    assert M.navigation_error(traj, ref, g) == 3.0
    assert M.success(traj, ref, g) == 0.0
    assert M.success(traj, ref, g, inclusive=True) == 1.0
    assert M.oracle_success(traj, ref, g) == 0.0
    nd = M.ndtw(traj, ref, g)
    assert nd == pytest.approx(math.exp(-3 / 9))  # D-D 0, E-E 0, E-F 3
    assert M.sdtw(traj, ref, g) == 0.0
    assert M.sdtw(traj, ref, g, inclusive=True) == nd  # r4r's SDTW counts exactly 3 m as success
    s = M.score_episode(traj, ref, g, M.MetricOptions(sdtw_inclusive=True))
    assert s["success"] == 0.0 and s["sdtw"] == nd  # SR stays R2R's strict test
    s = M.score_episode(traj, ref, g, M.MetricOptions(inclusive=True))
    assert s["success"] == 1.0 and s["spl"] == 1.0 and s["sdtw"] == 0.0  # shortest 5 / max(TL 2, 5)


def test_repeated_viewpoints_in_dtw(g):
    traj, ref = ["A", "B", "C", "D", "D", "D"], ["A", "B", "C"]
    assert M.dtw(traj, ref, g) == 6.0  # as given (the official scorers): each D matched to C again
    assert M.ndtw(traj, ref, g) == pytest.approx(math.exp(-6 / 9))
    assert M.dtw(traj, ref, g, collapse_repeats=True) == 2.0  # collapsed: A B C D
    s = M.score_episode(traj, ref, g)
    assert s["dtw"] == 6.0 and M.score_episode(traj, ref, g, M.MetricOptions(collapse_repeats=True))["dtw"] == 2.0
    # Repeats change neither CLS nor TL; steps count them, moves do not.
    assert M.cls(traj, ref, g) == M.cls(["A", "B", "C", "D"], ref, g)
    assert M.path_length(traj, g) == 6.0
    assert (s["steps"], s["moves"]) == (5, 3)


def test_spl_reference_length_and_floor(g):
    traj = ref = ["C", "D", "E", "F"]  # the gold path is 7 m, the shortest 5 m
    assert M.spl(traj, ref, g) == pytest.approx(5 / 7)
    assert M.spl(traj, ref, g, reference_length="gold") == 1.0
    with pytest.raises(ValueError, match="reference_length"):
        M.spl(traj, ref, g, reference_length="path")
    s = M.score_episode(traj, ref, g, M.MetricOptions(spl_reference="gold"))
    assert s["spl"] == 1.0 and s["shortest"] == 5.0
    # Start is the goal and nobody moved: 0/0 scores 0 (VALAN; what the 0.01 floor gives too).
    assert M.spl(["A"], ["A"], g) == 0.0
    assert M.spl(["A"], ["A"], g, floor=0.01) == 0.0
    assert M.cls(["A"], ["A"], g) == 1.0 and M.ndtw(["A"], ["A"], g) == 1.0


def test_functions_agree_with_score_episode(g):
    rng = random.Random(0)
    for _ in range(50):
        traj = ["A"]
        for _ in range(rng.randrange(0, 8)):
            traj.append(rng.choice(g.neighbours(traj[-1]) + [traj[-1]]))
        ref = rng.choice([["A", "B", "C"], ["A", "B", "C", "F"], ["A"], ["A", "B"]])
        s = M.score_episode(traj, ref, g)
        assert s["nav_error"] == M.navigation_error(traj, ref, g)
        assert s["oracle_success"] == M.oracle_success(traj, ref, g)
        assert s["length"] == M.path_length(traj, g)
        assert s["spl"] == M.spl(traj, ref, g)
        assert s["dtw"] == M.dtw(traj, ref, g)
        assert s["ndtw"] == M.ndtw(traj, ref, g)
        assert s["sdtw"] == M.sdtw(traj, ref, g)
        assert s["cls"] == M.cls(traj, ref, g)
        assert 0.0 <= s["spl"] <= s["success"] and s["sdtw"] <= s["success"]


def test_invalid_moves(g):
    assert M.invalid_moves(["A", "A", "B", "C"], g) == []
    assert M.invalid_moves(["A", "B", "D", "E", "A"], g) == [(2, g.ix("B"), g.ix("D")), (4, g.ix("E"), g.ix("A"))]


def test_unknown_viewpoint_is_named(g):
    with pytest.raises(ValueError, match="'Z'"):
        M.navigation_error(["A", "Z"], ["A"], g)


def _naive_dtw(cost: np.ndarray) -> float:
    """r4r's dtw.py recursion, written out loop by loop."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(acc[n, m])


def test_batched_dtw_is_bit_identical_to_the_loop():
    rng = np.random.default_rng(0)
    costs = [rng.random((int(rng.integers(1, 12)), int(rng.integers(1, 9)))) * 10 for _ in range(200)]
    got = M.dtw_many(costs)
    assert got.shape == (200,)
    assert [float(x) for x in got] == [_naive_dtw(c) for c in costs]


def _grid_table():
    graph = nx.grid_graph([3, 4])
    nodes = list(graph.nodes)
    dist = dict(nx.all_pairs_dijkstra_path_length(graph))
    table = SimpleNamespace(index={str(v): i for i, v in enumerate(nodes)},
                            distances=np.array([[dist[a][b] for b in nodes] for a in nodes], dtype=float))
    return table, (lambda path: [str(v) for v in path])


def test_r4r_doctests():
    """The published doctests of google-research r4r/dtw.py and r4r/cls.py (unit-weight 3 x 4 grid)."""
    table, ids = _grid_table()
    prediction = ids([(0, 0), (1, 0), (2, 0), (3, 0)])
    reference = ids([(0, 0), (1, 0), (2, 1), (3, 2)])
    assert M.dtw(prediction, reference, table) == pytest.approx(3.0)
    assert M.ndtw(prediction, reference, table) == pytest.approx(0.77880078307140488)
    assert M.sdtw(prediction, reference, table) == pytest.approx(0.77880078307140488)
    assert M.sdtw(prediction[:2], reference, table) == 0.0
    # r4r's CLS doctest calls cls(reference, prediction) against its (prediction, reference) signature.
    ref = ids([(0, 0), (1, 0), (1, 1), (2, 1), (2, 2), (3, 2)])
    assert M.cls(ref, ref, table) == pytest.approx(1.0)
    assert M.cls(ref, ids([(0, 0), (0, 1), (1, 1), (2, 1), (3, 1), (3, 2)]), table) == pytest.approx(0.81994915125863865)
    assert M.cls(ref, ids([(0, 1), (1, 1), (2, 1), (3, 1)]), table) == pytest.approx(0.44197196102702557)


def _r4r_on_the_list(prediction, reference, table, threshold=3.0):
    """nDTW and SDTW as r4r's dtw.py (and CLIP-ViL's RxR eval.py) compute them on the list they are given."""
    d = lambda a, b: table.distances[table.index[a], table.index[b]]  # noqa: E731
    cost = np.array([[d(p, r) for r in reference] for p in prediction])
    ndtw = math.exp(-_naive_dtw(cost) / (threshold * len(reference)))
    return ndtw, ndtw * (d(prediction[-1], reference[-1]) <= threshold)


def test_repeats_are_scored_as_the_official_scorers_do():
    """Trajectories with turns in place (repeated viewpoints), as R2R/RxR results record them: the defaults equal
    r4r's values on the same list; CLS (r4r's crashes on repeats) equals r4r's CLS with repeats removed."""
    table, ids = _grid_table()
    reference = ids([(0, 0), (1, 0), (1, 1), (2, 1), (2, 2), (3, 2)])
    rng = random.Random(5)
    for _ in range(50):
        walk = [(0, 0)]
        for _ in range(rng.randrange(1, 8)):
            x, y = walk[-1]
            walk.append(rng.choice([(x, y)] * 2 + [n for n in [(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]
                                                      if 0 <= n[0] < 4 and 0 <= n[1] < 3]))
        prediction = ids(walk)
        ndtw, sdtw = _r4r_on_the_list(prediction, reference, table)
        assert M.ndtw(prediction, reference, table) == pytest.approx(ndtw, rel=1e-12)
        assert M.sdtw(prediction, reference, table, inclusive=True) == pytest.approx(sdtw, rel=1e-12)
        unique = [p for k, p in enumerate(prediction) if k == 0 or p != prediction[k - 1]]
        assert M.cls(prediction, reference, table) == M.cls(unique, reference, table)
    # by hand: a turn in place at (2, 0), one past the reference's end (1, 0), is matched to it twice
    walked, short = ids([(0, 0), (1, 0), (2, 0), (2, 0)]), reference[:2]
    assert M.dtw(walked, short, table) == 2.0 and M.dtw(walked, short, table, collapse_repeats=True) == 1.0
    assert M.ndtw(walked, short, table) == pytest.approx(math.exp(-2 / 6))


def test_aggregate():
    rows = [dict.fromkeys(M.METRIC_KEYS, 1.0), dict.fromkeys(M.METRIC_KEYS, 0.0)]
    agg = M.aggregate(rows)
    assert agg["count"] == 2 and agg["success"] == 0.5 and agg["ndtw"] == 0.5
    empty = M.aggregate([])
    assert empty["count"] == 0 and math.isnan(empty["success"])


def test_real_graph_gold_paths_score_perfectly(shared_data):
    """Every val_unseen gold path, walked as is, scores NE 0, SR = SPL = nDTW = CLS = 1, TL = its distance."""
    import json

    items = json.loads((shared_data / "R2R" / "R2R_val_unseen.json").read_text())
    tables = {it["scan"]: load_graph(shared_data / "connectivity", it["scan"]) for it in items}
    rows = M.score_episodes([it["path"] for it in items], [it["path"] for it in items],
                            [tables[it["scan"]] for it in items])
    agg = M.aggregate(rows)
    assert agg["nav_error"] == 0.0 and agg["success"] == 1.0 and agg["ndtw"] == 1.0
    assert agg["cls"] == pytest.approx(1.0, abs=1e-9)
    lengths = np.array([r["length"] for r in rows])
    assert np.allclose(lengths, [it["distance"] for it in items], atol=0.01)
    # 8 val_unseen gold paths are longer than the graph's shortest path (e.g. path 601: 9.44 m vs 8.11 m),
    # so their SPL is shortest / length < 1, as the official scorer computes it.
    shortest = np.array([r["shortest"] for r in rows])
    assert np.allclose([r["spl"] for r in rows], shortest / np.maximum(lengths, shortest))
    assert int(np.sum(lengths - shortest > 1e-6)) == 8
