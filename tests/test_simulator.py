"""The simulator against MatterSim's own tests (src/test/main.cpp), a tiny hand-built graph, and an
independent per-state reference implementation on thousands of states over all 90 real scans."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from envs.datadir import DataError
from envs.kernel.simulator import Simulator

SCANS = ["2t7WUuJeko7", "17DRP5sb8fy"]
VIEWPOINTS = ["cc34e9176bfe47ebb23c58c165203134", "5b9b2794954e4694a45fc424a8643081"]
# MatterSim's test schedule (degrees): state before step t, the change applied at t, expected snapped values.
HEADING = [10, 350, 350, 1, 90, 180, 90, 270, 90, 270]
HEADING_CHG = [-20, -360, 371, 89, 90, -90, -180, -180, -180, 0]
DISCRETE_HEADING = [0, 330, 300, 330, 0, 30, 0, 330, 300, 270]
ELEVATION = [10, 10, -26, -40, -40, -40, 50, 50, 40, 0]
ELEVATION_CHG = [0, -36, -30, -10, 0, 90, 5, -10, -40, 0]
DISCRETE_ELEVATION = [0, 0, -30, -30, -30, -30, 0, 30, 0, -30]
VIEW_INDEX = [12, 23, 10, 11, 0, 1, 12, 35, 22, 9]


def _record(image_id, xyz, included=True):
    pose = [1, 0, 0, xyz[0], 0, 1, 0, xyz[1], 0, 0, 1, xyz[2], 0, 0, 0, 1]
    return {"image_id": image_id, "pose": pose, "included": included, "height": 1.5}


@pytest.fixture
def tiny(tmp_path):
    """A star around 'o' at the origin: neighbours at known headings (clockwise from +y) and elevations."""
    def at(deg, dist=2.0, dz=0.0):
        r = math.radians(deg)
        return (dist * math.sin(r), dist * math.cos(r), dz)

    spots = {"o": (0.0, 0.0, 0.0), "a": at(10), "b": at(-39.5), "c": at(40.5), "d": at(180),
             "up": at(-5, 2.0, 1.0), "excl": at(5), "blocked": at(0)}
    ids = list(spots)
    records = [_record(i, spots[i], included=(i != "excl")) for i in ids]
    for i, rec in enumerate(records):
        # 'o' is joined to every other viewpoint except 'blocked'; the rest see only 'o'
        rec["unobstructed"] = [(ids[i] == "o") != (ids[j] == "o") and "blocked" not in (ids[i], ids[j])
                               for j in range(len(ids))]
        rec["visible"] = rec["unobstructed"]
    conn = tmp_path / "connectivity"
    conn.mkdir()
    (conn / "tiny_connectivity.json").write_text(json.dumps(records))
    (conn / "scans.txt").write_text("tiny\n")
    return conn


def make_sim(conn, batch=1, width=640, height=480, vfov=math.radians(60), discretized=False, restricted=True):
    sim = Simulator()
    sim.setNavGraphPath(conn)
    sim.setCameraResolution(width, height)
    sim.setCameraVFOV(vfov)
    sim.setDiscretizedViewingAngles(discretized)
    sim.setRestrictedNavigation(restricted)
    sim.setBatchSize(batch)
    sim.initialize()
    return sim


def nav_ids(state):
    return [loc.viewpointId for loc in state.navigableLocations]


# ------------------------------------------------------------------------------------------ tiny graph
def test_field_of_view_sort_and_current_first(tiny):
    sim = make_sim(tiny)  # R2R camera: half horizontal FOV = 40 degrees
    sim.newEpisode(["tiny"], ["o"], [0.0], [0.0])
    state = sim.getState()[0]
    # b at -39.5 and c at 40.5 straddle the 40 degree edge; 'd' is behind; excluded/obstructed never listed
    # sorted by sqrt(rel_heading^2 + rel_elevation^2): 'up' (5 deg right, 26.6 deg up) comes after 'a'
    assert nav_ids(state) == ["o", "a", "up", "b"]
    assert state.location is state.navigableLocations[0]
    assert (state.location.rel_heading, state.location.rel_elevation, state.location.rel_distance) == (0, 0, 0)
    a = state.navigableLocations[1]
    assert a.rel_heading == pytest.approx(math.radians(10), abs=1e-6)
    assert a.rel_distance == pytest.approx(2.0, abs=1e-6)
    up = state.navigableLocations[2]
    assert up.rel_elevation == pytest.approx(math.atan2(1.0, 2.0), abs=1e-6)
    assert up.ix == 5 and (up.x, up.y, up.z) == pytest.approx((2 * math.sin(math.radians(-5)),
                                                                 2 * math.cos(math.radians(-5)), 1.0), abs=1e-6)


def test_other_camera_sizes_change_the_field_of_view(tiny):
    wide = make_sim(tiny, width=20, height=20, vfov=math.radians(90))  # half HFOV 45: c and b both visible
    wide.newEpisode(["tiny"], ["o"], [0.0], [0.0])
    assert set(nav_ids(wide.getState()[0])) == {"o", "up", "a", "b", "c"}
    narrow = make_sim(tiny, width=200, height=100, vfov=math.radians(8))  # half HFOV 8 degrees
    narrow.newEpisode(["tiny"], ["o"], [0.0], [0.0])
    assert nav_ids(narrow.getState()[0]) == ["o", "up"]  # a at 10 degrees is out
    narrow.setCameraVFOV(math.radians(12))  # takes effect after initialize, as in MatterSim
    narrow.makeAction([0], [0.0], [0.0])
    assert nav_ids(narrow.getState()[0]) == ["o", "a", "up"]


def test_unrestricted_navigation_lists_every_neighbour_sorted(tiny):
    sim = make_sim(tiny, restricted=False)
    sim.newEpisode(["tiny"], ["o"], [0.0], [0.0])
    state = sim.getState()[0]
    assert nav_ids(state) == ["o", "a", "up", "b", "c", "d"]
    keys = [math.hypot(loc.rel_heading, loc.rel_elevation) for loc in state.navigableLocations]
    assert keys == sorted(keys)
    assert abs(state.navigableLocations[-1].rel_heading) == pytest.approx(math.pi, abs=1e-6)


def test_moving_then_turning(tiny):
    sim = make_sim(tiny, discretized=True)
    sim.newEpisode(["tiny"], ["o"], [0.0], [0.0])
    sim.makeAction([1], [1.0], [-1.0])  # move to 'a', turn right, look down
    state = sim.getState()[0]
    assert state.location.viewpointId == "a" and state.step == 1
    assert state.heading == pytest.approx(math.radians(30)) and state.elevation == -math.pi / 6.0
    assert state.viewIndex == 1
    assert state.location.rel_distance == 0.0
    # from 'a' only 'o' is reachable and it is behind: only the current location is navigable
    assert nav_ids(state) == ["a"]


# ------------------------------------------------------------------------------------------ errors
def test_errors_are_clear(tiny):
    sim = make_sim(tiny, batch=2)
    assert sim.getState()[0].navigableLocations == []
    with pytest.raises(RuntimeError, match="newEpisode must be called before makeAction"):
        sim.makeAction([0, 0], [0, 0], [0, 0])
    with pytest.raises(DataError, match="unknown scan 'nope'"):
        sim.newEpisode(["tiny", "nope"], ["o", "o"], [0, 0], [0, 0])
    with pytest.raises(DataError, match="has no viewpoint 'zzz'"):
        sim.newEpisode(["tiny", "tiny"], ["o", "zzz"], [0, 0], [0, 0])
    with pytest.raises(DataError, match="excluded"):
        sim.newEpisode(["tiny", "tiny"], ["o", "excl"], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="scanIds has 1 entries but the batch size is 2"):
        sim.newEpisode(["tiny"], ["o"], [0], [0])
    with pytest.raises(TypeError, match="must be a list"):
        sim.newEpisode("tiny", ["o", "o"], [0, 0], [0, 0])
    sim.newEpisode(["tiny", "tiny"], ["o", "a"], [0, 0], [0, 0])
    with pytest.raises(ValueError, match=r"Invalid action index 5: episode 1 at a \(scan tiny\) has 1 navigable"):
        sim.makeAction([1, 5], [0, 0], [0, 0])
    # nothing moved: the batch is validated before any element changes
    assert [s.location.viewpointId for s in sim.getState()] == ["o", "a"]
    assert [s.step for s in sim.getState()] == [0, 0]
    with pytest.raises(NotImplementedError, match="does not render"):
        sim.setRenderingEnabled(True)
    with pytest.warns(UserWarning, match="no effect after initialize"):
        sim.setBatchSize(8)
    assert sim.batch_size == 2
    assert sim.setElevationLimits(-0.5, 0.5) and not sim.setElevationLimits(0.1, 0.5)


def test_state_before_initialize_and_blank_images(tiny):
    sim = Simulator()
    sim.setNavGraphPath(tiny)
    assert sim.getState() == []
    sim.newEpisode(["tiny"], ["o"], [0.0], [0.0])  # initializes on demand, as MatterSim
    state = sim.getState()[0]
    assert state.rgb.shape == (240, 320, 3) and not state.rgb.any() and not state.rgb.flags.writeable


# ------------------------------------------------------------------------------------------ MatterSim's tests
def test_continuous_motion(shared_data):
    sim = make_sim(shared_data / "connectivity", batch=2, width=200, height=100, vfov=math.radians(45))
    assert sim.setElevationLimits(math.radians(-40), math.radians(50))
    sim.newEpisode(SCANS, VIEWPOINTS, [math.radians(HEADING[0])] * 2, [math.radians(ELEVATION[0])] * 2)
    for t in range(10):
        for i, state in enumerate(sim.getState()):
            assert state.scanId == SCANS[i] and state.step == t and state.viewIndex == 0
            assert state.heading == pytest.approx(math.radians(HEADING[t]))
            assert state.elevation == pytest.approx(math.radians(ELEVATION[t]))
            assert state.location.viewpointId == VIEWPOINTS[i]
            assert 0.0 <= state.heading <= 2 * math.pi
        sim.makeAction([0, 0], [math.radians(HEADING_CHG[t])] * 2, [math.radians(ELEVATION_CHG[t])] * 2)


def test_discrete_motion(shared_data):
    sim = make_sim(shared_data / "connectivity", batch=2, width=200, height=100, vfov=math.radians(45),
                   discretized=True)
    assert sim.setElevationLimits(math.radians(-10), math.radians(10))  # disregarded when discretized
    sim.newEpisode(SCANS, VIEWPOINTS, [math.radians(HEADING[0])] * 2, [math.radians(ELEVATION[0])] * 2)
    for t in range(10):
        for state in sim.getState():
            assert state.step == t
            assert state.heading == pytest.approx(math.radians(DISCRETE_HEADING[t]))
            assert state.elevation == pytest.approx(math.radians(DISCRETE_ELEVATION[t]))
            assert state.viewIndex == VIEW_INDEX[t]
            # exactly MatterSim's doubles: heading_step * (2 pi / 12) and +-pi/6
            assert state.heading == (state.viewIndex % 12) * (math.pi * 2.0 / 12)
            assert state.elevation == (state.viewIndex // 12 - 1) * (math.pi / 6.0)
        sim.makeAction([0, 0], [math.radians(HEADING_CHG[t])] * 2, [math.radians(ELEVATION_CHG[t])] * 2)


def test_robot_relative_coords(shared_data):
    sim = make_sim(shared_data / "connectivity", batch=2, width=200, height=100, vfov=math.radians(45))
    sim.setElevationLimits(math.radians(-40), math.radians(50))
    sim.newEpisode(SCANS, VIEWPOINTS, [math.radians(HEADING[0])] * 2, [math.radians(ELEVATION[0])] * 2)
    checked = 0
    for t in range(10):
        for state in sim.getState():
            last = 0.0
            for loc in state.navigableLocations[1:]:
                angle = math.hypot(loc.rel_heading, loc.rel_elevation)
                assert angle >= last
                last = angle
                h, e = state.heading + loc.rel_heading, state.elevation + loc.rel_elevation
                offset = np.array([math.sin(h) * math.cos(e), math.cos(h) * math.cos(e), math.sin(e)])
                target = np.array([state.location.x, state.location.y, state.location.z]) + offset * loc.rel_distance
                assert np.allclose([loc.x, loc.y, loc.z], target, atol=1e-4)
                checked += 1
        sim.makeAction([t % len(s.navigableLocations) for s in sim.getState()],
                       [math.radians(HEADING_CHG[t])] * 2, [math.radians(ELEVATION_CHG[t])] * 2)
    assert checked > 5


def test_navigable_locations_every_scan(shared_data):
    """MatterSim's test: 90 degree HFOV; each unobstructed included neighbour is listed iff it is in view."""
    conn = shared_data / "connectivity"
    scans = (conn / "scans.txt").read_text().split()
    sim = make_sim(conn, batch=len(scans), width=20, height=20, vfov=math.radians(90))
    rng = np.random.default_rng(1)
    graphs = sim.edges.graphs
    starts = [rng.choice(graphs[s].included_ids) for s in scans]
    sim.newEpisode(scans, starts, rng.uniform(0, 2 * math.pi, len(scans)).tolist(), [0.0] * len(scans))
    for t in range(10):
        for scan, state in zip(scans, sim.getState()):
            graph = graphs[scan]
            cur = graph.ix(state.location.viewpointId)
            listed = set(nav_ids(state)[1:])
            for j in np.flatnonzero(graph.unobstructed[cur]):
                dx, dy = (graph.positions[j, :2] - graph.positions[cur, :2]).astype(np.float64)
                off = abs((math.atan2(dx, dy) - state.heading + math.pi) % (2 * math.pi) - math.pi)
                if abs(off - math.pi / 4) > 1e-5:  # leave the float32 boundary to the reference test
                    assert (graph.ids[j] in listed) == (off < math.pi / 4), (scan, graph.ids[j])
            assert listed <= set(graph.neighbours(state.location.viewpointId))
        sim.makeAction([t % len(s.navigableLocations) for s in sim.getState()],
                       [math.radians(HEADING_CHG[t])] * len(scans), [0.0] * len(scans))


# ------------------------------------------------------------------------------------------ reference
def reference_navigable(records, cur, heading, elevation, threshold, restricted):
    """Straightforward per-state populateNavigable: one neighbour at a time with float32 scalars."""
    f = np.float32
    cam_x, cam_y = f(math.cos(math.pi / 2.0 - heading)), f(math.sin(math.pi / 2.0 - heading))
    here = [f(records[cur]["pose"][k]) for k in (3, 7, 11)]
    found = []
    for j, rec in enumerate(records):
        if j == cur or not records[cur]["unobstructed"][j] or not rec["included"]:
            continue
        x, y, z = (f(rec["pose"][k]) - here[n] for n, k in enumerate((3, 7, 11)))
        flat = np.sqrt(x * x + y * y)
        if restricted:
            if flat == 0:
                continue
            if not float((x / flat) * cam_x + (y / flat) * cam_y) >= threshold:
                continue
        rel_h = math.atan2(float(x * cam_y - y * cam_x), float(x * cam_x + y * cam_y))
        rel_e = math.atan2(float(z), float(flat)) - elevation
        found.append((rec["image_id"], rel_h, rel_e, float(np.sqrt(x * x + y * y + z * z))))
    found.sort(key=lambda n: math.sqrt(n[1] * n[1] + n[2] * n[2]))
    return found


def reference_turn(heading, elevation, dh, de, discretized, limits=(-0.94, 0.94)):
    """setHeadingElevation after makeAction, written out in plain floats."""
    if discretized:
        dh = math.copysign(math.pi / 6, dh) if dh else 0.0
        de = math.copysign(math.pi / 6, de) if de else 0.0
    h = math.fmod(heading + dh, 2 * math.pi)
    h = h + 2 * math.pi if h < 0 else h
    e = elevation + de
    if not discretized:
        return h, min(max(e, limits[0]), limits[1])
    step = int(math.floor(h / (math.pi / 6) + 0.5)) % 12
    level = 0 if e < -math.pi / 12 else (2 if e > math.pi / 12 else 1)
    return step * (math.pi * 2.0 / 12), (level - 1) * (math.pi / 6.0)


@pytest.mark.parametrize("discretized,restricted", [(True, True), (False, True), (False, False)])
def test_matches_reference_on_random_states(shared_data, discretized, restricted):
    conn = shared_data / "connectivity"
    scans = (conn / "scans.txt").read_text().split()
    records = {s: json.loads((conn / f"{s}_connectivity.json").read_text()) for s in scans}
    sim = make_sim(conn, batch=len(scans), discretized=discretized, restricted=restricted)
    threshold = math.cos(math.radians(60) * 640 / 480 / 2.0)
    rng = np.random.default_rng(7 + discretized + 2 * restricted)
    starts = [rng.choice([r["image_id"] for r in records[s] if r["included"]]) for s in scans]
    sim.newEpisode(scans, starts, rng.uniform(-7, 7, len(scans)).tolist(), rng.uniform(-1, 1, len(scans)).tolist())
    states_checked = 0
    for t in range(14):
        states = sim.getState()
        for scan, state in zip(scans, states):
            ids = [r["image_id"] for r in records[scan]]
            expect = reference_navigable(records[scan], ids.index(state.location.viewpointId), state.heading,
                                         state.elevation, threshold, restricted)
            got = state.navigableLocations[1:]
            assert [loc.viewpointId for loc in got] == [e[0] for e in expect], (scan, t)
            for loc, (_, rel_h, rel_e, dist) in zip(got, expect):
                assert loc.rel_heading == pytest.approx(rel_h, abs=1e-6)
                assert loc.rel_elevation == pytest.approx(rel_e, abs=1e-6)
                assert loc.rel_distance == pytest.approx(dist, abs=1e-6)
                assert loc.ix == ids.index(loc.viewpointId)
            states_checked += 1
        index = [int(rng.integers(len(s.navigableLocations))) for s in states]
        dh = rng.choice([-1.0, 0.0, 1.0], len(scans)) * rng.uniform(0, 4, len(scans))
        de = rng.choice([-1.0, 0.0, 1.0], len(scans)) * rng.uniform(0, 0.7, len(scans))
        sim.makeAction(index, dh.tolist(), de.tolist())
        for state, before, i, h, e in zip(sim.getState(), states, index, dh, de):
            assert state.location.viewpointId == before.navigableLocations[i].viewpointId
            assert (state.heading, state.elevation) == pytest.approx(
                reference_turn(before.heading, before.elevation, h, e, discretized), abs=1e-12)
            assert 0.0 <= state.heading <= 2 * math.pi
    assert states_checked == 14 * len(scans)
