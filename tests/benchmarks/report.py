"""Benchmark figures: the row type every scenario returns, targets, the table and the JSON.

Owns how a figure is summarised (median over runs), compared (ratio, or "better by" when lower
is better) and judged against its target. Scenarios only measure; they never format.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Target:
    """What the issue asks of a row: a minimum ratio, or a maximum for our own figure."""

    kind: Literal["ratio_at_least", "ours_at_most"]
    value: float
    text: str

    def met(self, ours: float | None, ratio: float | None) -> bool | None:
        if self.kind == "ratio_at_least":
            return None if ratio is None else ratio >= self.value
        return None if ours is None else ours <= self.value


def ratio_at_least(value: float) -> Target:
    return Target("ratio_at_least", value, f">= {value:g}x")


def ours_at_most(value: float, unit: str, text: str | None = None) -> Target:
    return Target("ours_at_most", value, text or f"<= {value:g} {unit}")


@dataclass
class Row:
    """One metric of one scenario, with every run's value for both systems."""

    scenario: str
    metric: str
    unit: str
    better: Better
    workerpool_runs: list[float]
    celery_runs: list[float]
    #: Which plain Celery configuration the celery column is ("" when there is none).
    celery_config: str = ""
    target: Target | None = None
    #: True when the figure may legitimately be zero or negative (a growth, a lag).
    signed: bool = False
    #: "difference" for growths, where ours may be ~0 and a ratio would mean nothing.
    compare: Literal["ratio", "difference"] = "ratio"
    note: str = ""

    @property
    def workerpool(self) -> float | None:
        return median(self.workerpool_runs)

    @property
    def celery(self) -> float | None:
        return median(self.celery_runs)

    @property
    def ratio(self) -> float | None:
        """How many times better workerpool is: ours/celery if higher is better, else inverse.

        When both systems ran the same number of runs, the runs are pairs measured side by
        side (scenarios interleave the systems), and the ratio is the median of the per-run
        ratios: on a machine whose load drifts, each pair shares its moment's load. Otherwise
        the ratio of the medians. Undefined when a figure is not positive (a growth of zero).
        """
        if self.compare == "difference":
            return None
        if self.paired:
            ratios = [
                r
                for ours, theirs in zip(self.workerpool_runs, self.celery_runs, strict=True)
                if (r := self._ratio_of(ours, theirs)) is not None
            ]
            return median(ratios) if len(ratios) == len(self.workerpool_runs) else None
        ours, theirs = self.workerpool, self.celery
        if ours is None or theirs is None:
            return None
        return self._ratio_of(ours, theirs)

    @property
    def paired(self) -> bool:
        return bool(self.workerpool_runs) and len(self.workerpool_runs) == len(self.celery_runs)

    @property
    def difference(self) -> float | None:
        """celery - workerpool (for lower-is-better growths: how much less ours grew)."""
        ours, theirs = self.workerpool, self.celery
        return None if ours is None or theirs is None else theirs - ours

    def _ratio_of(self, ours: float, theirs: float) -> float | None:
        num, den = (ours, theirs) if self.better == "higher" else (theirs, ours)
        if den <= 0 or num <= 0:
            return None
        return num / den

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self.workerpool, self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "metric": self.metric,
            "unit": self.unit,
            "better": self.better,
            "workerpool": self.workerpool,
            "celery": self.celery,
            "celery_config": self.celery_config,
            "ratio": self.ratio,
            "ratio_of": "median of per-run ratios" if self.paired else "ratio of medians",
            "difference": self.difference if self.compare == "difference" else None,
            "target": self.target.text if self.target else None,
            "met": self.met,
            "signed": self.signed,
            "note": self.note,
            "runs": {"workerpool": self.workerpool_runs, "celery": self.celery_runs},
        }


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with `pct`% of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("jobs/s",) or abs(value) >= 1000:
        return f"{value:,.0f}"
    if unit == "s" and abs(value) < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"


def _ratio(row: Row) -> str:
    if row.compare == "difference":
        gap = row.difference
        if gap is None:
            return "-"
        return f"{_number(abs(gap), row.unit)} {row.unit} {'less' if gap >= 0 else 'more'}"
    ratio = row.ratio
    if ratio is None:
        return "-"
    if row.better == "higher":
        return f"{ratio:.2f}x" if ratio < 100 else f"{ratio:,.0f}x"
    # Lower is better: say which way, since "better by 0.05x" reads as a win.
    if ratio >= 1:
        return f"better by {ratio:.2f}x" if ratio < 100 else f"better by {ratio:,.0f}x"
    inverse = 1 / ratio
    return f"worse by {inverse:.2f}x" if inverse < 100 else f"worse by {inverse:,.0f}x"


def _met(row: Row) -> str:
    return {None: "", True: "yes", False: "NO"}[row.met]


def table(rows: Sequence[Row], header: Sequence[str]) -> str:
    """Plain-text table: scenario, metric, workerpool, celery, ratio, target, met?."""
    columns = ["scenario", "metric", "workerpool", "celery", "ratio", "target", "met?"]
    body = [
        [
            row.scenario,
            f"{row.metric} ({row.unit})",
            _number(row.workerpool, row.unit),
            _number(row.celery, row.unit)
            + (f" [{row.celery_config}]" if row.celery_config else ""),
            _ratio(row),
            row.target.text if row.target else "",
            _met(row),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [columns, *body]) for i in range(len(columns))]
    right = {2, 3, 4}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [*header, fmt(columns), fmt(["-" * w for w in widths])]
    lines += [fmt(line) for line in body]
    notes = [f"  [{row.scenario}/{row.metric}] {row.note}" for row in rows if row.note]
    if notes:
        lines += ["notes:", *notes]
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], rows: Sequence[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "results": [row.as_json() for row in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n")
