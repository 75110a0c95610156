"""Feature files: legacy TSV reading (lazy, with clear errors), HDF5 writing/resuming, TSV -> HDF5 conversion."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from envs.datadir import DataError
from features import convert
from features.hdf5 import HDF5FeatureWriter
from features.store import open_features
from features.tsv import write_tsv

SAMPLE_TSV = "image_features_sample/valan_efficientnet_b4_3scans_36views.tsv"


def make_rows(n: int = 5, dim: int = 8, seed: int = 0) -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(f"scan{i % 2}", f"vp{i:03d}", rng.standard_normal((36, dim)).astype(np.float32)) for i in range(n)]


@pytest.fixture
def tsv(tmp_path: Path) -> tuple[Path, list[tuple[str, str, np.ndarray]]]:
    rows = make_rows()
    path = tmp_path / "feats.tsv"
    assert write_tsv(path, rows, image_w=640, image_h=480, vfov=60) == len(rows)
    return path, rows


def test_tsv_roundtrip_is_lazy_and_exact(tsv):
    path, rows = tsv
    with open_features(path) as store:
        assert store.dim == 8
        assert store.attrs == {"format": "tsv", "image_w": 640, "image_h": 480, "vfov": 60}
        assert store.keys() == [f"{s}_{v}" for s, v, _ in rows]
        assert "scan0_vp000" in store and "scan0_vp001" not in store
        got = store.get("scan1", "vp003")
        assert got.dtype == np.float32 and got.shape == (36, 8)
        np.testing.assert_array_equal(got, rows[3][2])
        # table keeps the requested order even though TSV reads go front to back
        order = ["scan0_vp004", "scan0_vp000", "scan1_vp001"]
        table = store.table(order, dtype=np.float16)
        assert table.shape == (3, 36, 8) and table.dtype == np.float16
        np.testing.assert_array_equal(table[0], rows[4][2].astype(np.float16))
        with pytest.raises(DataError, match="scan9_nope.*features.extract"):
            store.table(["scan0_vp000", "scan9_nope"])
        with pytest.raises(DataError, match="feats.tsv"):
            store["scan9_nope"]


def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, "<f4").tobytes()).decode()


def test_tsv_errors_name_file_line_and_fix(tmp_path):
    good = _b64(np.ones((36, 4)))
    bad_cols = _write_lines(tmp_path / "cols.tsv", [f"s\tv\t640\t480\t60\t{good}", "s\tw\t640\t480"])
    with pytest.raises(DataError, match=r"cols\.tsv: line 2 has 4 tab-separated columns, expected 6"):
        open_features(bad_cols)
    bad_shape = _write_lines(tmp_path / "shape.tsv", [f"s\tv\t640\t480\t60\t{_b64(np.ones(37 * 4))}"])
    with pytest.raises(DataError, match=r"line 1 \(s_v\).*not 36 views x D"):
        open_features(bad_shape)
    mixed = _write_lines(tmp_path / "mixed.tsv", [f"s\tv\t640\t480\t60\t{good}", f"s\tw\t640\t480\t60\t{_b64(np.ones((36, 8)))}"])
    with pytest.raises(DataError, match=r"line 2 \(s_w\) holds \[36, 8\].*\[36, 4\]"):
        open_features(mixed)
    # same length as a valid row, so only decoding can notice: the error comes on access, naming the line
    corrupt = _write_lines(tmp_path / "b64.tsv", [f"s\tv\t640\t480\t60\t{good}", f"s\tw\t640\t480\t60\t{'!' * len(good)}"])
    with open_features(corrupt) as store:
        assert store["s_v"].sum() == 36 * 4
        with pytest.raises(DataError, match=r"line 2 \(s_w\): corrupt base64"):
            store["s_w"]
    with pytest.raises(DataError, match="feature file not found"):
        open_features(tmp_path / "absent.tsv")


def test_real_tsv_sample(shared_data):
    with open_features(shared_data / SAMPLE_TSV) as store:
        assert len(store) == 31 and store.dim == 1792
        assert store.attrs["image_w"] == 640 and store.attrs["vfov"] == 60
        table = store.table(store.keys())
        assert table.shape == (31, 36, 1792) and np.isfinite(table).all()
        # the 36 views of a panorama differ from each other (views were not duplicated by the conversion)
        assert not np.allclose(table[0, 0], table[0, 1])


def test_hdf5_writer_store_and_resume(tmp_path):
    path = tmp_path / "out.h5"
    rows = make_rows(4)
    attrs = {"encoder": "RN50x4", "weights": "openai", "image_w": 640}
    with HDF5FeatureWriter(path, 8, attrs, dtype=np.float16) as writer:
        for scan, vp, array in rows[:2]:
            writer.write(scan, vp, array)
        with pytest.raises(ValueError, match=r"expected \(36, 8\)"):
            writer.write("s", "v", np.zeros((36, 9)))
    writer = HDF5FeatureWriter(path, 8, attrs, dtype=np.float16)
    writer.write(*rows[2])
    writer.suspend()  # stops without building: the journal keeps the key
    assert list(tmp_path.iterdir()) != [path] and "scan0_vp002" not in open_features(path)
    with HDF5FeatureWriter(path, 8, attrs, dtype=np.float16) as writer:  # resume: done keys are visible
        assert "scan0_vp000" in writer and "scan0_vp002" in writer and "scan1_vp003" not in writer
        for scan, vp, array in rows[2:]:
            writer.write(scan, vp, array)
    with pytest.raises(DataError, match="encoder='RN50x4', but this run writes encoder='ViT-B/32'"):
        HDF5FeatureWriter(path, 8, dict(attrs, encoder="ViT-B/32"), dtype=np.float16)
    with pytest.raises(DataError, match="dim=8, but this run writes dim=16"):
        HDF5FeatureWriter(path, 16, attrs, dtype=np.float16)
    with open_features(path) as store:
        assert store.dim == 8 and len(store) == 4
        assert store.attrs["encoder"] == "RN50x4"
        assert store.attrs["format_version"] == 1 and store.attrs["dtype"] == "float16"
        got = store.get("scan1", "vp003")
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, rows[3][2].astype(np.float16).astype(np.float32))


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from features.hdf5 import HDF5FeatureWriter
    new = 0
    writer = HDF5FeatureWriter(sys.argv[1], 64, {"encoder": "test"})
    for i in range(100000):
        key = f"vp{i:06d}"
        if "scan_" + key not in writer:
            writer.write("scan", key, np.full((36, 64), i / 16, np.float32))  # exact, and within FEATURE_LIMIT
            new += 1
            if new == 10:
                print("started", flush=True)
    """
)


def test_hdf5_writer_survives_sigkill(tmp_path):
    """Kill a writer mid-stream several times; each run resumes, and the final file holds exact values."""
    path = tmp_path / "killed.h5"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    previous = 0
    for delay in (0.02, 0.1, 0.3):
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)], env=env, stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"started"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not path.exists()  # never a half-built output
        writer = HDF5FeatureWriter(path, 64, {"encoder": "test"})
        assert len(writer) >= previous + 10  # every run added keys and kept the earlier ones
        assert all(f"scan_vp{i:06d}" in writer for i in range(len(writer)))  # no gaps: keys land in order
        previous = len(writer)
        writer.suspend()
    # a torn record at the end (a kill inside a write) is dropped, the records before it kept
    journal = path.with_name("killed.h5.journal")
    with open(journal, "ab") as out:
        out.write(b"\x10\x00\x00\x00scan_vp9")
    with HDF5FeatureWriter(path, 64, {"encoder": "test"}) as writer:
        assert len(writer) == previous
    assert not journal.exists()
    with open_features(path) as store:
        assert len(store) == previous and store.attrs["encoder"] == "test"
        table = store.table(store.keys())
        expected = (np.arange(previous) / 16).astype(np.float32)
        np.testing.assert_array_equal(table, np.broadcast_to(expected[:, None, None], table.shape))
    with pytest.raises(DataError, match="journal: is not a feature-writer journal"):
        journal.write_bytes(b"junk")
        HDF5FeatureWriter(path, 64, {"encoder": "test"})


def test_convert_cli_writes_atomically(tsv, tmp_path, capsys):
    src, rows = tsv
    dst = tmp_path / "sub" / "feats.h5"
    assert convert.main([str(src), str(dst), "--dtype", "float16", "--encoder", "resnet152", "--quiet"]) == 0
    assert "wrote 5 panoramas" in capsys.readouterr().out
    with h5py.File(dst) as f:
        assert f.attrs["encoder"] == "resnet152" and f.attrs["source"] == "feats.tsv"
        assert f["scan0_vp000"].dtype == np.float16
    with open_features(dst) as store:
        np.testing.assert_array_equal(store["scan0_vp002"], rows[2][2].astype(np.float16).astype(np.float32))
    assert [p.name for p in dst.parent.iterdir()] == ["feats.h5"]  # no temp file left behind
    bad = _write_lines(tmp_path / "bad.tsv", ["s\tv\t1"])
    assert convert.main([str(bad), str(tmp_path / "bad.h5"), "--quiet"]) == 2
    assert "bad.tsv: line 1 has 3" in capsys.readouterr().err
    assert not (tmp_path / "bad.h5").exists()
