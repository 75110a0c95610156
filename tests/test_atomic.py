"""Atomic writes (envs.atomic): a write that fails or is killed leaves the old file, and no litter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from envs.atomic import atomic_open, remove_leftovers, save_npz, write_json, write_jsonl


def test_writers_round_trip(tmp_path):
    write_json(tmp_path / "a" / "x.json", {"k": [1, 2]}, indent=2)
    assert json.loads((tmp_path / "a" / "x.json").read_text()) == {"k": [1, 2]}
    write_jsonl(tmp_path / "rows.jsonl", [{"a": 1}, {"b": "é"}])
    assert [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()] == [{"a": 1}, {"b": "é"}]
    save_npz(tmp_path / "arrays.npz", x=np.arange(3))
    with np.load(tmp_path / "arrays.npz") as data:
        np.testing.assert_array_equal(data["x"], np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "arrays.npz", "rows.jsonl"]  # no temporary files


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "results.json"
    write_json(target, [1])
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write("[2, ")
            raise RuntimeError("the writer died half-way")
    assert json.loads(target.read_text()) == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_killed_write_keeps_the_old_file_and_leftovers_can_be_removed(tmp_path):
    target = tmp_path / "big.bin"
    target.write_bytes(b"old")
    script = ("import sys, time; from envs.atomic import atomic_open\n"
              "with atomic_open(sys.argv[1]) as f:\n"
              "    f.write(b'new' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"old"
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".big.bin.")
    remove_leftovers(target)
    assert list(tmp_path.iterdir()) == [target]
