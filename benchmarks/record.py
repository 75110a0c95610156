"""What every benchmark reports: named figures, measured over repeats, each with its reference and ratio.

A benchmark script builds :class:`Figure` objects and hands them to :func:`report`, which prints one line per
figure (median, min-max over the repeats, the reference and the ratio to it) and, with ``--record FILE``,
writes them as JSON for ``benchmarks/run_all.py`` to gather into one record. A measurement on a shared
2-core machine moves by 10-20% from run to run, so each figure is taken several times (``--repeats``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """One measured quantity: a value per repeat, and what it is compared with."""

    name: str
    unit: str
    values: list[float]
    reference: float | None = None  # the figure it is compared with, in the same unit
    reference_source: str = ""  # where the reference comes from
    higher_is_better: bool = True
    target: str = ""  # the goal, in words (e.g. "<= 370 ms")
    notes: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def ratio(self) -> float | None:
        """How many times better than the reference: median / reference, or reference / median for figures
        where lower is better (times, memory)."""
        if not self.reference or not self.median:
            return None
        return self.median / self.reference if self.higher_is_better else self.reference / self.median

    def line(self) -> str:
        spread = f"(min {number(min(self.values))}, max {number(max(self.values))}, n={len(self.values)})"
        text = f"{self.name:52s} {number(self.median):>10s} {self.unit:9s} {spread}"
        if self.reference is not None:
            text += f"  ref {number(self.reference)}" + (f" -> {self.ratio:.2f}x" if self.ratio else "")
        return text + (f"  target {self.target}" if self.target else "")

    def as_dict(self) -> dict:
        return asdict(self) | {"median": self.median, "min": min(self.values), "max": max(self.values),
                               "ratio": self.ratio}


def cpu() -> str:
    """The CPU model and its widest vector units, e.g. ``Intel(R) Xeon(R) Processor (AVX-512, AMX)``: a timing's
    reference is only comparable on the same kind of CPU, and cloud machines of one name differ in these."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    units = [name for name, flag in (("AVX-512", "avx512f"), ("AMX", "amx_bf16")) if flag in flags]
    units = units or (["AVX2"] if "avx2" in flags else [])
    return f"{model} ({', '.join(units)})" if units else model


def number(value: float) -> str:
    """A figure as people read it: thousands separated, three significant digits below 100."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def add_arguments(parser: argparse.ArgumentParser, repeats: int = 3) -> None:
    """``--repeats`` and ``--record``, the options every benchmark takes."""
    parser.add_argument("--repeats", type=int, default=repeats, help="times each figure is measured")
    parser.add_argument("--record", type=Path, default=None, help="also write the figures as JSON here")


def report(figures: list[Figure], record: Path | None) -> None:
    """Print the figures and, with ``record``, write them as JSON."""
    for figure in figures:
        print(figure.line(), flush=True)
    if record is not None:
        Path(record).write_text(json.dumps([f.as_dict() for f in figures], indent=1))
