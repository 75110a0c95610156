"""EnvDrop's panoramic action space: the closed-form candidate index equals the simulator-driven procedure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from envs.gym.candidates import (angle_feature, angle_features, build_candidate_index, turn_sequence,
                                 view_angle_features, view_angle_table)
from envs.kernel.backends import make_r2r_simulator
from envs.kernel.grid import VIEW_COUNT, view_elevation, view_heading
from envs.kernel.navgraph import load_graphs
from envs.kernel.simulator import Simulator


def envdrop_candidates(sim: Simulator, scan: str, viewpoint: str) -> dict[str, dict]:
    """EnvDrop's make_candidate, driving the simulator through the 36 views (the reference)."""
    adj: dict[str, dict] = {}
    for ix in range(VIEW_COUNT):
        if ix == 0:
            sim.newEpisode([scan], [viewpoint], [0], [math.radians(-30)])
        elif ix % 12 == 0:
            sim.makeAction([0], [1.0], [1.0])
        else:
            sim.makeAction([0], [1.0], [0])
        state = sim.getState()[0]
        assert state.viewIndex == ix
        for j, loc in enumerate(state.navigableLocations[1:]):
            distance = np.sqrt(loc.rel_heading ** 2 + loc.rel_elevation ** 2)
            if loc.viewpointId not in adj or distance < adj[loc.viewpointId]["distance"]:
                adj[loc.viewpointId] = {"distance": distance, "pointId": ix, "idx": j + 1,
                                        "normalized_heading": state.heading + loc.rel_heading,
                                        "elevation": state.elevation + loc.rel_elevation,
                                        "metres": loc.rel_distance}
    return adj


@pytest.fixture(scope="module")
def real(shared_data):
    conn = shared_data / "connectivity"
    graphs = load_graphs(conn)
    return graphs, build_candidate_index(graphs), make_r2r_simulator(conn)


def test_index_equals_simulator_procedure(real):
    graphs, index, sim = real
    rng = np.random.default_rng(3)
    keys = [(scan, vp) for scan in graphs for vp in graphs[scan].included_ids]
    for k in rng.choice(len(keys), 300, replace=False):
        scan, vp = keys[k]
        expect = envdrop_candidates(sim, scan, vp)
        got = index.for_viewpoint(scan, vp)
        assert [c.viewpoint_id for c in got] == list(expect), (scan, vp)
        for c in got:
            e = expect[c.viewpoint_id]
            assert (c.point_id, c.nav_index) == (e["pointId"], e["idx"])
            assert (c.heading, c.elevation, c.distance) == (e["normalized_heading"], e["elevation"], e["metres"])
            assert c.ix == graphs[scan].ix(c.viewpoint_id)


def test_every_neighbour_is_a_candidate(real):
    graphs, index, _ = real
    assert index.max_candidates == max(int(g.unobstructed.sum(1).max()) for g in graphs.values())
    assert len(index.target_ix) == sum(int(g.unobstructed.sum()) for g in graphs.values())
    scan = "17DRP5sb8fy"
    for vp in graphs[scan].ids:
        assert {c.viewpoint_id for c in index.for_viewpoint(scan, vp)} == set(graphs[scan].neighbours(vp))


def test_turns_then_move_reach_the_candidate(real):
    graphs, index, sim = real
    scan = "2t7WUuJeko7"
    for vp in graphs[scan].included_ids[:15]:
        for cand in index.for_viewpoint(scan, vp):
            start_view = 13
            sim.newEpisode([scan], [vp], [view_heading(start_view)], [0.0])
            plan = turn_sequence(start_view, cand.point_id)
            for (dh, de), view in zip(plan.turns, plan.views):
                sim.makeAction([0], [dh], [de])
                assert sim.getState()[0].viewIndex == view
            sim.makeAction([cand.nav_index], [0], [0])
            state = sim.getState()[0]
            assert state.location.viewpointId == cand.viewpoint_id
            assert (state.heading, state.elevation) == (plan.heading, plan.elevation)


def test_turn_sequence_every_pair():
    for src in range(VIEW_COUNT):
        for dst in range(VIEW_COUNT):
            plan = turn_sequence(src, dst)
            tilts = [t for t in plan.turns if t[0] == 0]
            assert plan.turns[: len(tilts)] == tilts  # tilts first, then turns right only
            assert len(tilts) == abs(dst // 12 - src // 12)
            assert len(plan.turns) - len(tilts) == (dst % 12 - src % 12) % 12
            assert (plan.views[-1] if plan.views else src) == dst
    assert turn_sequence(0, 0).turns == []
    assert turn_sequence(11, 24).turns == [(0, 1), (0, 1), (1, 0)]
    with pytest.raises(ValueError, match="0..35"):
        turn_sequence(0, 36)


def test_view_angles_match_the_simulator(real):
    *_, sim = real
    sim.newEpisode(["17DRP5sb8fy"], ["5b9b2794954e4694a45fc424a8643081"], [0], [math.radians(-30)])
    base_heading = 7 * math.radians(30)
    feats = view_angle_features(7)
    assert feats.shape == (36, 128) and feats.dtype == np.float32
    np.testing.assert_array_equal(view_angle_table()[7], feats)
    for ix in range(VIEW_COUNT):
        if ix:
            sim.makeAction([0], [1.0], [1.0 if ix % 12 == 0 else 0.0])
        state = sim.getState()[0]
        assert (view_heading(ix), view_elevation(ix)) == (state.heading, state.elevation)
        # EnvDrop subtracts radians (leaving 1e-16 residues where the headings agree); ours is exact on the grid
        np.testing.assert_allclose(feats[ix], angle_feature(state.heading - base_heading, state.elevation),
                                   rtol=0, atol=1e-12)
        if ix % 12 == 7:
            assert feats[ix][0] == 0.0  # sin of the relative heading: exactly 0 straight ahead


def test_angle_feature_layout():
    f = angle_feature(0.3, -0.5)
    assert f.shape == (128,) and f.dtype == np.float32
    four = np.array([math.sin(0.3), math.cos(0.3), math.sin(-0.5), math.cos(-0.5)], dtype=np.float32)
    np.testing.assert_array_equal(f, np.tile(four, 32))  # interleaved, as EnvDrop's list * 32
    hs, es = np.array([[0.1, 2.0], [-1.0, 4.0]]), np.array([[0.0, 0.5], [-0.5, 0.2]])
    batch = angle_features(hs, es, 64)
    assert batch.shape == (2, 2, 64)
    np.testing.assert_allclose(batch[1, 0], angle_feature(-1.0, -0.5, 64), atol=1e-7)


def test_cache_round_trip(tmp_path, real):
    graphs, index, _ = real
    subset = {s: graphs[s] for s in list(graphs)[:3]}
    first = build_candidate_index(subset, cache_dir=tmp_path)
    files = list(tmp_path.glob("candidates-*.npz"))
    assert len(files) == 1
    again = build_candidate_index(subset, cache_dir=tmp_path)
    for name in ("offsets", "target_ix", "point_id", "heading", "elevation", "distance", "nav_index"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    scan, vp = next(iter(subset)), subset[next(iter(subset))].included_ids[0]
    assert again.for_viewpoint(scan, vp) == index.for_viewpoint(scan, vp)
    build_candidate_index({s: graphs[s] for s in list(graphs)[:2]}, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("candidates-*.npz"))) == 2  # other graphs, other key
