"""Next-fire computation: a table with the time passed in, DST included."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from worker_runtime.core.cron import CronError, check_expression, next_fire, previous_fire

UTCZ = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 2 * * *", utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 2, 0)),
        ("0 2 * * *", utc(2026, 1, 1, 2, 0), utc(2026, 1, 2, 2, 0)),  # strictly after
        ("*/15 * * * *", utc(2026, 1, 1, 10, 7, 30), utc(2026, 1, 1, 10, 15)),
        ("0 9 * * 1", utc(2026, 11, 24, 12, 0), utc(2026, 11, 30, 9, 0)),  # next Monday
        ("0 0 1 * *", utc(2026, 2, 15), utc(2026, 3, 1)),
        ("*/10 * * * *", utc(2026, 12, 31, 23, 55), utc(2027, 1, 1, 0, 0)),
        ("*/5 * * * * *", utc(2026, 1, 1, 0, 0, 3), utc(2026, 1, 1, 0, 0, 5)),  # seconds first
    ],
)
def test_next_fire_in_utc(expr: str, after: datetime, expected: datetime) -> None:
    assert next_fire(expr, after, UTCZ) == expected


def test_next_fire_follows_the_configured_zone() -> None:
    # 02:00 in New York in winter is 07:00 UTC.
    assert next_fire("0 2 * * *", utc(2026, 1, 10, 0, 0), NY) == utc(2026, 1, 10, 7, 0)


def test_spring_forward_gap_fires_once_after_the_jump() -> None:
    # 2026-03-08: New York clocks jump 02:00 EST -> 03:00 EDT; 02:30 does not exist.
    fire = next_fire("30 2 * * *", utc(2026, 3, 8, 5, 0), NY)  # 00:00 EST
    assert fire == utc(2026, 3, 8, 7, 30)  # 03:30 EDT: fired, not skipped
    assert next_fire("30 2 * * *", fire, NY) == utc(2026, 3, 9, 6, 30)  # next day 02:30 EDT


def test_spring_forward_gap_does_not_double_fire_interval_schedules() -> None:
    ticks = _ticks("*/30 * * * *", utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 7, 45), NY)
    # 01:30 EST, then 02:00/02:30 (gap) land on 03:00/03:30 EDT with the real ones: one each.
    assert ticks == [utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 7, 30)]
    assert len(set(ticks)) == len(ticks)


def test_fall_back_repeated_hour_fires_once() -> None:
    # 2026-11-01: New York clocks go 02:00 EDT -> 01:00 EST; 01:30 happens twice.
    ticks = _ticks("30 1 * * *", utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 8, 0), NY)
    assert ticks == [utc(2026, 11, 1, 5, 30)]  # the first 01:30 (EDT) only


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("expr", "zone", "start", "end", "expected"),
    [
        # 2026-10-25, Berlin: 03:00 CEST -> 02:00 CET, so 02:00-02:59 happens twice. Before:
        # the hourly schedule jumped from 00:00Z (02:00 CEST) to 02:00Z, skipping 01:00Z.
        (
            "0 * * * *",
            BERLIN,
            utc(2026, 10, 24, 22, 30),
            utc(2026, 10, 25, 3, 30),
            [
                utc(2026, 10, 24, 23),
                utc(2026, 10, 25, 0),
                utc(2026, 10, 25, 1),
                utc(2026, 10, 25, 2),
                utc(2026, 10, 25, 3),
            ],
        ),
        # Every 30 minutes: four ticks in the two passes of the repeated hour, one per instant.
        (
            "*/30 * * * *",
            BERLIN,
            utc(2026, 10, 24, 23, 45),
            utc(2026, 10, 25, 2, 0),
            [
                utc(2026, 10, 25, 0),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 1),
                utc(2026, 10, 25, 1, 30),
                utc(2026, 10, 25, 2),
            ],
        ),
        # Starting inside the first pass, the second pass is still ahead.
        (
            "0 * * * *",
            BERLIN,
            utc(2026, 10, 25, 0, 40),
            utc(2026, 10, 25, 2, 0),
            [utc(2026, 10, 25, 1), utc(2026, 10, 25, 2)],
        ),
        # Seconds first, hour a wildcard: the repeated hour fires in both passes.
        (
            "0 0 * * * *",
            NY,
            utc(2026, 11, 1, 4, 30),
            utc(2026, 11, 1, 7, 0),
            [utc(2026, 11, 1, 5), utc(2026, 11, 1, 6), utc(2026, 11, 1, 7)],
        ),
        # A fixed hour in the repeated range fires once, on the first pass (not hourly).
        ("0 2 * * *", BERLIN, utc(2026, 10, 24, 22), utc(2026, 10, 25, 3), [utc(2026, 10, 25, 0)]),
        ("15 1 * * *", NY, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8), [utc(2026, 11, 1, 5, 15)]),
        # Spring forward (Berlin 2026-03-29, 02:00 CET -> 03:00 CEST): hourly, no double fire.
        (
            "0 * * * *",
            BERLIN,
            utc(2026, 3, 28, 23, 30),
            utc(2026, 3, 29, 2, 0),
            [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)],
        ),
    ],
)
def test_dst_changes_neither_skip_nor_double_fire(
    expr: str, zone: ZoneInfo, start: datetime, end: datetime, expected: list[datetime]
) -> None:
    assert _ticks(expr, start, end, zone) == expected


def test_fall_back_from_inside_the_second_pass_moves_forward() -> None:
    # At 01:45 EST (second pass) the next */15 tick is 02:00 EST, not a past 01:xx EDT tick.
    after = utc(2026, 11, 1, 6, 45)
    assert next_fire("*/15 * * * *", after, NY) == utc(2026, 11, 1, 7, 0)


def test_previous_fire_includes_an_exact_match() -> None:
    assert previous_fire("0 2 * * *", utc(2026, 1, 1, 2, 0), UTCZ) == utc(2026, 1, 1, 2, 0)
    assert previous_fire("0 2 * * *", utc(2026, 1, 1, 1, 59), UTCZ) == utc(2025, 12, 31, 2, 0)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire("* * * * *", datetime(2026, 1, 1), UTCZ)


@pytest.mark.parametrize(
    ("expr", "seconds", "message"),
    [
        ("0 2 * *", False, "has 4 fields"),
        ("61 * * * *", False, "not a valid cron expression"),
        ("* * * * * *", False, "has 6 fields"),
        ("0 2 * * mon-funday", False, "not a valid"),
        ("* * * * * * *", True, "has 7 fields"),
    ],
)
def test_bad_expressions_say_why(expr: str, seconds: bool, message: str) -> None:
    with pytest.raises(CronError, match=message):
        check_expression(expr, seconds=seconds)


def test_six_fields_are_accepted_only_in_seconds_mode() -> None:
    assert check_expression("*/2 * * * * *", seconds=True) == "*/2 * * * * *"


def _ticks(expr: str, start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    out, t = [], start
    while (t := next_fire(expr, t, zone)) <= end:
        out.append(t)
    return out
