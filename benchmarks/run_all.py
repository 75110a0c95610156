"""Run every benchmark and write one record: ``python benchmarks/run_all.py [--only NAME ...] [--out FILE]``.

Each ``bench_NAME.py`` runs in its own process (so peak memory is its own) with ``--record``; the figures
(median, min and max over repeats, reference and ratio) go into one JSON record with the machine and the
versions it ran on, and one table is printed. NAME as in ``bench_NAME.py``; each benchmark also runs alone
(see its docstring for its reference, target and options).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import record  # noqa: E402
from envs.atomic import write_json  # noqa: E402


def machine() -> dict:
    """What the figures were measured on."""
    import numpy
    import torch

    info = {"platform": platform.platform(), "cpu": record.cpu(), "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__, "numpy": numpy.__version__, "cuda": torch.cuda.is_available(),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                        text=True, timeout=10).stdout.strip()
    except OSError:
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=None, help="names of benchmarks to run")
    parser.add_argument("--out", type=Path, default=Path("runs") / "benchmarks.json", help="the record to write")
    args = parser.parse_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    figures, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            name = script.stem.removeprefix("bench_")
            out = Path(tmp) / f"{name}.json"
            print(f"=== {name}", flush=True)
            start = time.perf_counter()
            code = subprocess.call([sys.executable, str(script), "--record", str(out)])
            print(f"--- {name}: exit {code}, {time.perf_counter() - start:.0f} s\n", flush=True)
            if code != 0 or not out.exists():
                failures.append(name)
                continue
            figures += [dict(entry, benchmark=name) for entry in json.loads(out.read_text())]
    write_json(args.out, {"machine": machine(), "figures": figures, "failed": failures}, indent=1)
    print(f"{'figure':52s} {'median':>10s} {'unit':9s} {'min':>10s} {'max':>10s} {'reference':>10s} {'ratio':>7s}")
    for f in figures:
        reference = record.number(f["reference"]) if f["reference"] is not None else ""
        ratio = f"{f['ratio']:.2f}x" if f["ratio"] else ""
        print(f"{f['name']:52s} {record.number(f['median']):>10s} {f['unit']:9s} {record.number(f['min']):>10s} "
              f"{record.number(f['max']):>10s} {reference:>10s} {ratio:>7s}")
    print(f"\nrecord: {args.out}" + (f"; failed: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
