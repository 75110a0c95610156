"""Navigation graph: loading, edges, shortest paths, and clear errors on bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs.datadir import DataError
from envs.kernel.navgraph import NavGraph, load_graph, load_graphs, read_scans_txt


def _pose(x: float, y: float, z: float) -> list[float]:
    return [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1]


def _records(positions, edges, excluded=()):
    n = len(positions)
    recs = []
    for i, (x, y, z) in enumerate(positions):
        unob = [False] * n
        for a, b in edges:
            if a == i:
                unob[b] = True
            if b == i:
                unob[a] = True
        recs.append({"image_id": f"vp{i}", "pose": _pose(x, y, z), "included": i not in excluded,
                     "visible": unob, "unobstructed": unob, "height": 1.5})
    return recs


@pytest.fixture()
def square():
    # 0 -(1m)- 1 -(1m)- 2, and a long direct edge 0-3 (5 m) plus 2-3 (1 m); 4 is excluded but linked to 0.
    pos = [(0, 0, 0), (1, 0, 0), (2, 0, 0), (2, 1, 0), (0, 0.5, 0)]
    edges = [(0, 1), (1, 2), (2, 3), (0, 4)]
    return NavGraph("toy", _records(pos, edges, excluded={4}))


def test_edges_and_neighbours_skip_excluded(square):
    assert square.neighbours("vp0") == ["vp1"]
    assert square.neighbours("vp1") == ["vp0", "vp2"]
    assert not square.is_edge("vp0", "vp4")
    assert square.included_ids == ["vp0", "vp1", "vp2", "vp3"]


def test_shortest_distances_and_paths(square):
    assert square.distance("vp0", "vp3") == pytest.approx(3.0)
    assert square.shortest_path("vp0", "vp3") == ["vp0", "vp1", "vp2", "vp3"]
    assert square.next_hop("vp3", "vp0") == "vp2"
    assert square.shortest_path("vp2", "vp2") == ["vp2"]
    assert np.isinf(square.distance("vp0", "vp4"))
    assert square.path_length(["vp0", "vp1", "vp1", "vp2"]) == pytest.approx(2.0)
    with pytest.raises(DataError, match="not an edge"):
        square.path_length(["vp0", "vp2"])


def test_unknown_viewpoint_is_named(square):
    with pytest.raises(DataError, match="no viewpoint 'nope'"):
        square.distance("vp0", "nope")


def test_corrupt_and_malformed_files(tmp_path):
    (tmp_path / "bad_connectivity.json").write_text('[{"image_id": "a", "pose": [1, 2')
    with pytest.raises(DataError, match=r"bad_connectivity.json: not valid JSON"):
        load_graph(tmp_path, "bad")
    recs = _records([(0, 0, 0), (1, 0, 0)], [(0, 1)])
    del recs[1]["pose"]
    (tmp_path / "nopose_connectivity.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match=r"record 1 lacks field\(s\) \['pose'\]"):
        load_graph(tmp_path, "nopose")
    recs = _records([(0, 0, 0), (1, 0, 0)], [(0, 1)])
    recs[0]["unobstructed"] = [False]
    (tmp_path / "short_connectivity.json").write_text(json.dumps(recs))
    with pytest.raises(DataError, match="'unobstructed' has 1 entries, expected 2"):
        load_graph(tmp_path, "short")
    with pytest.raises(DataError, match="connectivity file not found"):
        load_graph(tmp_path, "missing_scan")
    with pytest.raises(DataError, match="scans.txt not found"):
        read_scans_txt(tmp_path)


@pytest.mark.realdata
def test_real_graphs_counts(shared_data):
    graphs = load_graphs(shared_data / "connectivity")
    assert len(graphs) == 90
    assert sum(len(g) for g in graphs.values()) == 10800
    assert sum(int(g.included.sum()) for g in graphs.values()) == 10567
    undirected = sum(int(np.triu(g.unobstructed | g.unobstructed.T).sum()) for g in graphs.values())
    assert undirected == 21468


@pytest.mark.realdata
@pytest.mark.parametrize("split", ["train", "val_seen", "val_unseen"])
def test_every_r2r_path_is_a_walk_with_the_files_distance(shared_data, split):
    items = json.loads((shared_data / "R2R" / f"R2R_{split}.json").read_text())
    conn = shared_data / "connectivity"
    worst, detours = 0.0, 0
    for item in items:
        graph = load_graph(conn, item["scan"])
        length = graph.path_length(item["path"])  # raises on a non-edge move
        worst = max(worst, abs(length - item["distance"]))
        shortest = graph.distance(item["path"][0], item["path"][-1])
        assert shortest <= length + 1e-9
        detours += shortest < length - 1e-6
    assert worst < 0.0051, f"worst |length - distance| = {worst}"
    # R2R paths are shortest paths on these graphs, except 8 val_unseen paths (measured; the split was
    # sampled on an older graph), so the teacher's shortest path and the reference path can differ there.
    assert detours == {"train": 0, "val_seen": 0, "val_unseen": 8}[split]


@pytest.mark.realdata
def test_edge_lengths_are_the_shortest_paths_weights_bit_for_bit(shared_data):
    # Where a single move is a shortest path, its distance is that edge's weight untouched (Floyd-Warshall only
    # replaces strictly shorter sums): the per-pair length path_length adds must equal it exactly.
    graphs = load_graphs(shared_data / "connectivity")
    moves = 0
    for graph in graphs.values():
        for i, j in zip(*np.nonzero(graph.unobstructed)):
            if graph.next_hop_table[i, j] == j:
                a, b = graph.ids[i], graph.ids[j]
                assert graph.edge_length(a, b) == graph.distances[i, j] == graph.path_length([a, b])
                moves += 1
    assert moves > 40000
