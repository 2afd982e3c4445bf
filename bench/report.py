"""Figures and how they are printed: every figure beside a baseline from the same run.

The machines are shared and noisy, so an absolute figure alone says little; the ratio to a
baseline measured a moment before on the same machine is what carries from run to run.
A figure may also carry a target (``>= 1.0x``, ``<= 5 ms``); the table marks it met or missed.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """What a figure should reach: ``on`` is ``ratio`` or ``value``, ``op`` is ``>=`` or ``<=``."""

    on: str
    op: str
    limit: float
    text: str

    def met(self, value: float, ratio: float | None) -> bool | None:
        subject = ratio if self.on == "ratio" else value
        if subject is None:
            return None
        return subject >= self.limit if self.op == ">=" else subject <= self.limit


def at_least_ratio(limit: float) -> Target:
    return Target("ratio", ">=", limit, f">= {limit:g}x")


def at_least(limit: float, unit: str) -> Target:
    return Target("value", ">=", limit, f">= {limit:,g} {unit}")


def at_most(limit: float, unit: str) -> Target:
    return Target("value", "<=", limit, f"<= {limit:,g} {unit}")


@dataclass(frozen=True)
class Figure:
    """One measured figure; ``higher_is_better`` decides which way the ratio reads."""

    bench: str
    metric: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: Target | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        """How this figure compares to its baseline: above 1 is better than the baseline."""
        if not self.baseline_value or not self.value:
            return None
        if self.higher_is_better:
            return self.value / self.baseline_value
        return self.baseline_value / self.value

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        met = self.target.met(self.value, self.ratio)
        return "" if met is None else "met" if met else "MISSED"


@dataclass
class Report:
    """What a run measured: the figures in order, and notes on how each was measured."""

    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def note(self, text: str) -> None:
        self.notes.append(text)


def number(value: float | None, unit: str = "") -> str:
    """A figure as people read it: thousands separated, two decimals only when small."""
    if value is None:
        return "-"
    if unit in ("ms", "s", "x") or abs(value) < 100:
        text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".strip()


def _cells(f: Figure) -> list[str]:
    ratio = f.ratio
    return [f.bench, f.metric, number(f.value, f.unit), f.baseline or "-",
            number(f.baseline_value, f.unit) if f.baseline_value is not None else "-",
            "-" if ratio is None else f"{ratio:.2f}x",
            f.target.text if f.target else "", f.verdict]


HEAD = ["bench", "metric", "value", "baseline", "baseline value", "ratio", "target", ""]


def text_table(figures: list[Figure]) -> str:
    rows = [HEAD, *(_cells(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
    right = {2, 4, 5}
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(figures: list[Figure]) -> str:
    head = ["bench", "metric", "value", "baseline", "baseline value", "ratio", "target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in _cells(f)) + " |")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """The facts that make figures comparable: cores, CPU model, Python, OS."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = "unknown"
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": model,
            "python": sys.version.split()[0] + f" ({platform.python_implementation()})",
            "os": f"{platform.system()} {platform.release()}", "load average at start": load}
