"""Long jobs lose nothing: ``kill -9`` at random moments of training, extraction and world building.

Each test runs the job uninterrupted once as a user would (``python -m ...``), timing its work (from the end of
its start-up to its exit), then runs it again, kills it with SIGKILL at least five times at random moments,
checks after every kill that every file it wrote is readable, resumes (or re-runs) it to the end and compares
the result with the uninterrupted run. Kill delays are drawn from the whole span of that work, so they fall
anywhere in it (between two writes as well as in the middle of one), and each test also requires kills in its
later phases (after a checkpoint, with views in the journal, during a replacing build), not only at its start.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.checkpoint import load_checkpoint
from envs.kernel.grid import VIEW_COUNT
from envs.kernel.navgraph import load_graphs
from eval.score import read_results
from features.store import open_features
from tasks.splits import load_split

ROOT = Path(__file__).resolve().parents[1]
KILLS = 5
ATTEMPTS = 30  # launches at most: a launch that finishes before its kill does not count
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _launch(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    """Poll until ``condition()`` holds; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the job did not reach its working phase in time")
        time.sleep(0.02)
    return True


def _start(args: list[str], working) -> tuple[subprocess.Popen, bool]:
    """Launch ``args`` and wait for the end of its start-up, ``working(proc, launched)``; the flag is False when
    the job ended before (it had nothing left to do)."""
    launched = time.time()
    proc = _launch(args)
    return proc, _wait_for(lambda: working(proc, launched), proc)


def _work_seconds(args: list[str], working) -> float:
    """How long an uninterrupted run of ``args`` works, from the end of its start-up to its exit."""
    proc, started = _start(args, working)
    assert started, proc.stderr.read().decode()[-3000:]
    began = time.perf_counter()
    _finish(proc)
    return time.perf_counter() - began


def _rewritten(path: Path):
    return lambda proc, launched: path.exists() and path.stat().st_mtime > launched


def _kill_after(proc: subprocess.Popen, delay: float) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds; False if it had finished by then."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]


# ------------------------------------------------------------------------------------------------ training
TRAIN = ["r2r", "--only", "follower", "--iters", "6", "--eval-every", "2", "--batch-size", "4",
         "--eval-batch-size", "32", "--quiet", "--seed", "5", "--threads", "1"]


def _train(world: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "agents.train", *TRAIN, "--data-dir", str(world), "--out", str(out), *extra]


def _training_files_readable(run: Path) -> None:
    json.loads((run / "config.json").read_text())
    if (run / "scores.json").exists():
        json.loads((run / "scores.json").read_text())
    if (run / "checkpoint.pt").exists():
        load_checkpoint(run / "checkpoint.pt", kind="training-state")
    if (run / "follower_best.pt").exists():
        load_checkpoint(run / "follower_best.pt", kind="follower")
    for results in (run / "results").glob("*.json"):
        read_results(results)


def _same_run(a: Path, b: Path) -> None:
    x, y = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert (x["stage_index"], x["iteration"], x["step"]) == (y["stage_index"], y["iteration"], y["step"])
    for model in ("follower", "speaker"):
        assert x[model].keys() == y[model].keys()
        for key in x[model]:
            assert torch.equal(x[model][key], y[model][key]), (model, key)
    untimed = lambda history: [{k: v for k, v in h.items() if k != "time"} for h in history]  # noqa: E731
    assert untimed(x["history"]) == untimed(y["history"]) and x["best"] == y["best"]
    best_a, best_b = load_checkpoint(a / "follower_best.pt"), load_checkpoint(b / "follower_best.pt")
    assert all(torch.equal(best_a["model"][k], best_b["model"][k]) for k in best_a["model"])
    for results in (a / "results").glob("*.json"):
        assert results.read_text() == (b / "results" / results.name).read_text(), results.name
    assert not list(b.glob(".*.tmp")) and not list((b / "results").glob(".*.tmp"))


@pytest.mark.slow
def test_training_resumes_after_kill_9_at_random_moments(tiny_world, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "killed"
    # training starts once config.json is (re)written: everything before is start-up
    seconds = _work_seconds(_train(tiny_world, straight), _rewritten(straight / "config.json"))
    rng = random.Random(15)
    kills = after_checkpoint = 0
    for _ in range(ATTEMPTS):
        if kills >= KILLS and after_checkpoint >= 2:
            break
        resume = ["--resume"] if (run / "config.json").exists() else []
        proc, working = _start(_train(tiny_world, run, *resume), _rewritten(run / "config.json"))
        delay = rng.uniform(0.0, seconds)
        if working and _kill_after(proc, delay):
            kills += 1
            _training_files_readable(run)
            saved = load_checkpoint(run / "checkpoint.pt")["iteration"] if (run / "checkpoint.pt").exists() else None
            after_checkpoint += saved is not None
            print(f"kill {kills}: {delay:.2f} s into {'resumed ' if resume else ''}training; checkpoint.pt at "
                  f"iteration {saved}; temporary files left: "
                  f"{len(list(run.glob('.*.tmp')) + list((run / 'results').glob('.*.tmp')))}")
        else:  # it finished before its kill: it must equal the straight run; then start over
            _finish(proc)
            _same_run(straight, run)
            shutil.rmtree(run)
    assert kills >= KILLS and after_checkpoint >= 2, (kills, after_checkpoint)
    if (run / "config.json").exists():
        _finish(_launch(_train(tiny_world, run, "--resume")))
    else:
        _finish(_launch(_train(tiny_world, run)))
    _training_files_readable(run)
    _same_run(straight, run)


# ------------------------------------------------------------------------------------------------ extraction
# A stand-in for CLIP (the journal, the resume and the atomic build are what is tested, not the network): the
# mean colour of each view through a fixed projection, so a run takes seconds and is exactly reproducible.
TINY_ENCODER = """
import torch


class Tiny:
    name, weights, image_size, embed_dim, device = "tiny", "none", 8, 16, torch.device("cpu")
    projection = torch.linspace(-1.0, 1.0, 3 * 16).reshape(3, 16)

    def columns_read(self, width, height):  # a narrow band: rendering is not what is tested
        return width // 2 - 16, width // 2 + 16

    def pooled(self, views):
        return views.float().mean(dim=(2, 3)) @ self.projection
"""
RUNNER = TINY_ENCODER + """
import sys
import features.extract as fx

fx.load_encoder = lambda *args, **kwargs: Tiny()
sys.exit(fx.main(sys.argv[1:]))
"""


RECORD_BYTES = VIEW_COUNT * 16 * 4  # one viewpoint's float32 [36, 16] in the journal (its header is smaller)


@pytest.mark.slow
def test_extraction_resumes_after_kill_9_at_random_moments(tiny_world, tmp_path):
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    graphs = load_graphs(tiny_world / "connectivity")
    scan = sorted(graphs)[0]
    viewpoints = graphs[scan].included_ids[:12]

    def args(out: Path) -> list[str]:
        return [str(runner), "--encoder", "RN50", "--data-dir", str(tiny_world), "--out", str(out), "--scans", scan,
                "--viewpoints", *viewpoints, "--device", "cpu", "--quiet"]

    def journaling(out: Path):
        """Working once this run writes the journal (a run that only builds the file from a complete journal may
        end first: then it counts as finished)."""
        return _rewritten(out.with_name(out.name + ".journal"))

    straight, out = tmp_path / "straight.h5", tmp_path / "killed.h5"
    seconds = _work_seconds(args(straight), journaling(straight))
    journal = out.with_name(out.name + ".journal")
    rng = random.Random(16)
    kills = with_views = 0
    for _ in range(ATTEMPTS):
        if kills >= KILLS and with_views >= 2:
            break
        proc, working = _start(args(out), journaling(out))
        delay = rng.uniform(0.0, seconds)
        if working and _kill_after(proc, delay):
            kills += 1
            size = journal.stat().st_size if journal.exists() else 0
            with_views += size >= RECORD_BYTES
            print(f"kill {kills}: {delay:.3f} s into the work; journal {size:,d} bytes, "
                  f"{out.name} {'complete' if out.exists() else 'absent'}")
            if out.exists():  # only ever complete (built from the journal and renamed): the work is done
                _same_features(straight, out, len(viewpoints))
                out.unlink()  # start over
        else:  # it finished before its kill: the same file as the straight run; start over
            _finish(proc)
            _same_features(straight, out, len(viewpoints))
            out.unlink()
    assert kills >= KILLS and with_views >= 2, (kills, with_views)
    _finish(_launch(args(out)))
    assert not journal.exists() and not list(tmp_path.glob(".killed.h5.*.tmp"))
    _same_features(straight, out, len(viewpoints))


def _same_features(a: Path, b: Path, count: int) -> None:
    with open_features(a) as x, open_features(b) as y:
        assert sorted(x.keys()) == sorted(y.keys()) and len(x.keys()) == count
        for key in x.keys():
            np.testing.assert_array_equal(x[key], y[key])


# ------------------------------------------------------------------------------------------------ world building
WORLD = ["--houses-seen", "2", "--houses-unseen", "1", "--houses-test", "1", "--paths-per-house", "12",
         "--eval-paths-per-house", "6", "--image-size", "24", "--workers", "1"]


def _world_complete(world: Path) -> None:
    """Every file of a built world reads: graphs, both tasks' splits, features, the manifest."""
    manifest = json.loads((world / "world.json").read_text())
    graphs = load_graphs(world / "connectivity")
    assert len(graphs) == len(manifest["houses"])
    for task in ("r2r", "rxr"):
        for split in ("train", "val_seen", "val_unseen", "test"):
            assert load_split(world, task, split)
    with open_features(world / manifest["features"]["file"]) as store:
        store.table(store.keys())


def _same_world(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        if rel.suffix == ".h5":
            with open_features(a / rel) as x, open_features(b / rel) as y:
                assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x.keys())
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _building(name: str, folder: Path):
    """Working once the build's temporary folder exists (graphs, splits, features go there)."""
    return lambda proc, launched: any(folder.glob(f".{name}.build-{proc.pid}-*"))


def _absent_or_same(world: Path, straight: Path) -> str:
    if not world.exists():
        return "absent"
    _world_complete(world)
    _same_world(straight, world)
    return "complete"


@pytest.mark.slow
def test_world_building_survives_kill_9_at_random_moments(tmp_path):
    straight, out = tmp_path / "straight", tmp_path / "killed"
    seconds = _work_seconds(["-m", "envs.world", "--out", str(straight), *WORLD], _building("straight", tmp_path))
    rng = random.Random(17)
    kills = replacing = 0
    for _ in range(ATTEMPTS):
        if kills >= KILLS and replacing >= 2:
            break
        # first builds into an absent --out, then (once one has finished) builds replacing it with --force
        force = ["--force"] if kills >= 2 else []
        if force and not out.exists():
            _finish(_launch(["-m", "envs.world", "--out", str(out), *WORLD]))
        proc, working = _start(["-m", "envs.world", "--out", str(out), *WORLD, *force], _building("killed", tmp_path))
        delay = rng.uniform(0.0, seconds)
        killed = working and _kill_after(proc, delay)
        if not killed:
            _finish(proc)
        # a killed build leaves --out absent or complete (the old world or the new, the same here), never half
        state = _absent_or_same(out, straight)
        print(f"{'kill ' + str(kills + killed) if killed else 'finished'}: {delay:.2f} s into a "
              f"{'replacing' if force else 'new'} build; {out.name} {state}")
        kills += killed
        replacing += killed and bool(force)
        if not force and out.exists():
            shutil.rmtree(out)  # the first builds start from nothing
    assert kills >= KILLS and replacing >= 2, (kills, replacing)
    _finish(_launch(["-m", "envs.world", "--out", str(out), *WORLD, "--force"]))
    _world_complete(out)
    _same_world(straight, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed", "straight"]  # no temporary folder left
