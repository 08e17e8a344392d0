"""The pure pieces of Busy, Queues and the Dashboard: how durations read, how Flower's inspect
warnings are quieted, and the dashboard's bar geometry."""

from __future__ import annotations

import logging

import pytest

from worker_runtime.core.display import duration
from worker_runtime.store.overview import Point
from worker_runtime.web.slot_controls import InspectNoise
from worker_runtime.web.views.overview import HEIGHT, bars


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (-9, "0s"), (0.4, "0s"), (45, "45s"), (185, "3m5s"), (7440, "2h4m")],
)
def test_durations_read_as_people_write_them_and_are_never_negative(
    seconds: float | None, shown: str
) -> None:
    assert duration(seconds) == shown


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("flower.inspector", logging.WARNING, "x", 1, msg, ("stats",), None)


def test_inspect_warnings_become_one_explained_line_per_quiet_period() -> None:
    noise = InspectNoise(quiet=3600)
    first, second = _record("Inspect method %s failed"), _record("Inspect method %s failed")
    assert noise.filter(first)
    assert "a job slot answers only between jobs" in first.getMessage()
    assert first.levelno == logging.INFO
    assert not noise.filter(second)
    assert noise.filter(_record("something else %s"))


def test_dashboard_bars_scale_to_the_busiest_point() -> None:
    geometry = bars([Point(0, 10, 5), Point(60, 0, 0)], "minute")
    assert geometry[0]["ok_h"] == HEIGHT
    assert geometry[0]["bad_h"] == HEIGHT / 2
    assert geometry[1]["ok_h"] == 0
    assert "10 processed, 5 failed" in str(geometry[0]["title"])
