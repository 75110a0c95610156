"""``python -m eval``: validation errors that name the entry, the R2R/RxR summaries and the per-episode file."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from eval.__main__ import main
from eval.metrics import METRIC_KEYS

# Line A-B-C-D-E, 2 m apart, F 3 m from E; G is a viewpoint of another scan.
POSITIONS = {"A": (0, 0), "B": (2, 0), "C": (4, 0), "D": (6, 0), "E": (8, 0), "F": (8, 3)}
EDGES = {("A", "B"), ("B", "C"), ("C", "D"), ("D", "E"), ("E", "F")}
PATHS = {1: ["A", "B", "C"], 2: ["C", "D", "E", "F"], 3: ["E", "D"]}


def _write_world(root):
    conn = root / "connectivity"
    conn.mkdir(parents=True)
    ids = list(POSITIONS)
    records = []
    for vp in ids:
        x, y = POSITIONS[vp]
        records.append({"image_id": vp, "pose": [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, 0, 0, 0, 0, 1], "included": True,
                        "height": 1.5, "unobstructed": [(vp, o) in EDGES or (o, vp) in EDGES for o in ids]})
    (conn / "house_connectivity.json").write_text(json.dumps(records))
    other = [{"image_id": "G", "pose": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "included": True,
              "height": 1.5, "unobstructed": [False]}]
    (conn / "other_connectivity.json").write_text(json.dumps(other))
    (conn / "scans.txt").write_text("house\nother\n")
    (root / "R2R").mkdir()
    split = [{"scan": "house", "path_id": pid, "path": path, "heading": 0.0, "distance": 0.0,
              "instructions": [f"walk {pid} {k}" for k in range(4 if pid == 2 else 3)]} for pid, path in PATHS.items()]
    (root / "R2R" / "R2R_val_seen.json").write_text(json.dumps(split))
    (root / "R2R" / "R2R_test.json").write_text(json.dumps([{"scan": "house", "path_id": 9, "path": ["A"],
                                                             "heading": 0.0, "instructions": ["go"]}]))
    (root / "RxR").mkdir()
    langs = ["en-US", "en-IN", "hi-IN", "te-IN"]
    with gzip.open(root / "RxR" / "rxr_val_seen_guide.jsonl.gz", "wt") as f:
        for iid, (pid, lang) in enumerate(zip([1, 2, 3, 1], langs)):
            f.write(json.dumps({"instruction_id": iid, "path_id": pid, "scan": "house", "path": PATHS[pid],
                                "heading": 0.0, "instruction": "walk", "language": lang, "split": "val_seen",
                                "annotator_id": 0, "edit_distance": 0, "timed_instruction": []}) + "\n")


@pytest.fixture()
def world(tmp_path):
    root = tmp_path / "data"
    _write_world(root)
    return root


def _gold(fourth: bool = False) -> list[dict]:
    """Gold-path results for instructions _0.._2 (and path 2's _3 with ``fourth``)."""
    return [{"instr_id": f"{pid}_{k}", "trajectory": [[vp, 0.0, 0.0] for vp in path]}
            for pid, path in PATHS.items() for k in range(4 if fourth and pid == 2 else 3)]


def _run(world, tmp_path, results, *extra, task="r2r", split="val_seen"):
    path = tmp_path / "results.json"
    path.write_text(results if isinstance(results, str) else json.dumps(results))
    return main([task, "--results", str(path), "--split", split, "--data-dir", str(world), *extra])


def test_gold_paths_score_perfectly_with_table_json_and_per_episode(world, tmp_path, capsys):
    out = tmp_path / "per" / "episodes.jsonl"
    assert _run(world, tmp_path, _gold(), "--per-episode", str(out)) == 0
    text = capsys.readouterr().out
    assert "NE" in text and "SDTW" in text and "count" in text
    assert text.splitlines()[-1].split()[-1] == "9" and "100.00" in text
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 9 and all(set(METRIC_KEYS) <= set(row) for row in lines)
    assert {row["instr_id"] for row in lines} == {f"{p}_{k}" for p in PATHS for k in range(3)}
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left nothing behind

    assert _run(world, tmp_path, _gold(), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["summary"]["count"] == 9 and summary["summary"]["success"] == 1.0
    assert summary["summary"]["ndtw"] == 1.0 and summary["options"]["collapse_repeats"] is False


def test_fourth_instruction_is_skipped_unless_asked(world, tmp_path, capsys):
    results = _gold(fourth=True)  # 2_3 exists in the split, and agents run it
    assert len(results) == 10
    assert _run(world, tmp_path, results, "--json") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["summary"]["count"] == 9
    assert "skipped 1" in captured.err
    assert _run(world, tmp_path, results, "--json", "--all-instructions") == 0
    assert json.loads(capsys.readouterr().out)["summary"]["count"] == 10


def test_stopping_agent_scores_hand_computed_values(world, tmp_path, capsys):
    results = [{"instr_id": r["instr_id"], "trajectory": r["trajectory"][:1]} for r in _gold()]
    assert _run(world, tmp_path, results, "--json") == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    # NE: path 1 -> 4 m, path 2 -> 7 m, path 3 -> 2 m (success, and SPL 2 / max(TL 0, 2) = 1).
    assert s["nav_error"] == pytest.approx((4 + 7 + 2) / 3)
    assert s["success"] == pytest.approx(1 / 3) and s["spl"] == pytest.approx(1 / 3) and s["length"] == 0.0
    assert s["oracle_success"] == pytest.approx(1 / 3) and s["steps"] == 0.0


@pytest.mark.parametrize("results, expected", [
    ("[{\"instr_id\": ", "not valid JSON"),
    ({"instr_id": "1_0"}, "expected a JSON list"),
    ([{"instr_id": "1_0"}], "entry 0 (instr_id '1_0') lacks 'trajectory'"),
    ([{"trajectory": [["A", 0, 0]]}], "entry 0 lacks 'instr_id'"),
    ([{"instr_id": "1_0", "trajectory": []}], "non-empty list"),
    ([{"instr_id": "1_0", "trajectory": [[3, 0, 0]]}], "trajectory step 0 is [3, 0, 0]"),
])
def test_malformed_results_are_named(world, tmp_path, capsys, results, expected):
    assert _run(world, tmp_path, results) == 2
    err = capsys.readouterr().err
    assert expected in err and "results.json" in err


def _with(entry_id: str, trajectory: list[str]) -> list[dict]:
    results = _gold()
    for r in results:
        if r["instr_id"] == entry_id:
            r["trajectory"] = [[vp, 0.0, 0.0] for vp in trajectory]
    return results


@pytest.mark.parametrize("results, expected", [
    (_with("1_1", ["A", "C"]), "entry 1 (instr_id '1_1'): step 1 moves from A to C, which are not joined"),
    (_with("1_2", ["A", "B", "G"]), "entry 2 (instr_id '1_2'): trajectory step 2 is at viewpoint 'G', which is "
                                    "not in scan house"),
    (_with("3_0", ["D", "E"]), "entry 6 (instr_id '3_0'): the trajectory starts at D but the episode starts at E"),
    (_gold() + [{"instr_id": "7_0", "trajectory": [["A", 0, 0]]}], "entry 9: instr_id '7_0' is not in this split"),
    (_gold() + [_gold()[0]], "entry 9: instr_id '1_0' repeats entry 0"),
    (_gold()[:7], "2 of the split's 9 instructions have no trajectory (3_1, 3_2)"),
])
def test_invalid_results_are_named(world, tmp_path, capsys, results, expected):
    assert _run(world, tmp_path, results) == 2
    assert expected in capsys.readouterr().err


def test_allow_missing_scores_the_present_ones_and_says_so(world, tmp_path, capsys):
    assert _run(world, tmp_path, _gold()[:7], "--allow-missing", "--json") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["summary"]["count"] == 7
    assert "scored 7 of 9" in captured.err


def test_test_split_cannot_be_scored(world, tmp_path, capsys):
    assert _run(world, tmp_path, [{"instr_id": "9_0", "trajectory": [["A", 0, 0]]}], split="test") == 2
    assert "no goal viewpoints" in capsys.readouterr().err


def test_rxr_per_language_breakdown(world, tmp_path, capsys):
    # Instructions 0..3 follow paths 1, 2, 3, 1 in en-US, en-IN, hi-IN, te-IN. The agent stops at once.
    results = [{"instr_id": iid, "trajectory": [[PATHS[pid][0], 0, 0]]} for iid, pid in enumerate([1, 2, 3, 1])]
    assert _run(world, tmp_path, results, "--json", task="rxr") == 0
    out = json.loads(capsys.readouterr().out)
    langs = out["languages"]
    assert set(langs) == {"en", "hi", "te", "average"}
    assert langs["en"]["count"] == 2 and langs["en"]["nav_error"] == pytest.approx((4 + 7) / 2)
    assert langs["hi"]["success"] == 1.0 and langs["te"]["success"] == 0.0
    assert langs["average"]["success"] == pytest.approx(1 / 3)  # mean of en 0, hi 1, te 0 (not 1/4 pooled)
    assert out["summary"]["success"] == pytest.approx(1 / 4)
    assert _run(world, tmp_path, results, task="rxr") == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table[2:]] == ["en", "hi", "te", "average", "all"]


def test_rxr_language_filter(world, tmp_path, capsys):
    results = [{"instr_id": 2, "trajectory": [["E", 0, 0], ["D", 0, 0]]}]
    assert _run(world, tmp_path, results, "--json", "--languages", "hi", task="rxr") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["count"] == 1 and out["summary"]["success"] == 1.0 and set(out["languages"]) == {"hi", "average"}


@pytest.mark.parametrize("languages,message", [
    (["fr"], "unknown RxR language 'fr'"), (["en-GB"], "unknown RxR language 'en-GB'"),
])
def test_rxr_unknown_language_codes_are_refused(world, tmp_path, capsys, languages, message):
    results = [{"instr_id": 2, "trajectory": [["E", 0, 0]]}]
    assert _run(world, tmp_path, results, "--languages", *languages, task="rxr") == 2
    err = capsys.readouterr().err
    assert message in err and "en-IN" in err and "Traceback" not in err and "not in this split" not in err


def test_rxr_selection_without_episodes_names_the_cause(world, tmp_path, capsys):
    guide = world / "RxR" / "rxr_val_seen_guide.jsonl.gz"
    with gzip.open(guide, "rt") as f:
        rows = [line for line in f if '"te-IN"' not in line]
    with gzip.open(guide, "wt") as f:
        f.writelines(rows)
    assert _run(world, tmp_path, [{"instr_id": 2, "trajectory": [["E", 0, 0]]}], "--languages", "te", task="rxr") == 2
    err = capsys.readouterr().err
    assert "has no episodes in languages te" in err and "not in this split" not in err


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["r2r", "--help"])
    text = capsys.readouterr().out
    for option in ("--results", "--split", "--data-dir", "--per-episode", "--json", "--allow-missing",
                   "--all-instructions", "--inclusive", "--sdtw-inclusive", "--spl-reference", "--spl-floor",
                   "--collapse-repeats", "--debug"):
        assert option in text
    assert text.count("\n  --") == 13 and "None" not in text


def test_real_val_unseen_gold_paths(shared_data, tmp_path, capsys):
    items = json.loads((shared_data / "R2R" / "R2R_val_unseen.json").read_text())
    results = [{"instr_id": f"{it['path_id']}_{k}", "trajectory": [[vp, 0, 0] for vp in it["path"]]}
               for it in items for k in range(len(it["instructions"]))]
    path = tmp_path / "gold.json"
    path.write_text(json.dumps(results))
    assert main(["r2r", "--results", str(path), "--split", "val_unseen", "--data-dir", str(shared_data), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    assert s["count"] == 2349 and s["nav_error"] == 0.0 and s["success"] == 1.0 and s["ndtw"] == 1.0
    assert not math.isnan(s["spl"]) and s["spl"] > 0.99  # 8 gold paths are not shortest paths
