"""bench_train compares with EnvDrop's time only on the kind of CPU where that time was measured."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_train  # noqa: E402
import record  # noqa: E402


def test_envdrop_timing_is_looked_up_by_cpu_kind():
    amd = bench_train.envdrop_timing("AMD EPYC 7B13 (AVX2)")
    intel = bench_train.envdrop_timing("Intel(R) Xeon(R) Processor (AVX-512, AMX)")
    assert amd is not None and intel is not None and amd != intel
    assert set(amd.ms) == set(intel.ms) == set(bench_train.STAGES)
    assert all(ms > 0 for ms in intel.ms.values()) and intel.peak_mb > 0
    # the same model name without the vector units the timing was taken with is another kind of machine
    assert bench_train.envdrop_timing("Intel(R) Xeon(R) Processor (AVX2)") is None
    assert bench_train.envdrop_timing("Apple M2") is None


def test_cpu_names_the_model_and_vector_units():
    name = record.cpu()
    assert name
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    models = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    if models:  # x86 Linux
        assert name.startswith(models[0])
        assert ("AVX-512" in name) == (" avx512f" in text)
