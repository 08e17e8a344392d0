"""Cron expressions: validation and next-fire computation with the time passed in.

Pure (python-arq's `next_cron` is the model): the caller supplies `after`; nothing here reads
the clock, so tests are a table. croniter parses and iterates the expression; this module adds
what croniter leaves to its caller: time zones with DST handled as cron users expect.

Expressions are iterated in naive local wall-clock time and each match is then placed on the
timeline. That gives the classic cron answers at DST changes:
- a wall time that does not exist (spring forward) fires once, at the same offset from the
  gap's start it would have had (02:30 fires at 03:30);
- a wall time that happens twice (fall back) fires once, on its first occurrence.
Two matches that land on the same instant fire once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter


class CronError(ValueError):
    """A cron expression that cannot be parsed or never fires."""


def check_expression(expr: str, *, seconds: bool = False) -> str:
    """Return `expr` if valid, else raise CronError saying why.

    Five fields (minute hour day month weekday), or six with seconds first when `seconds`.
    """
    if not isinstance(expr, str):
        raise CronError(f"cron expression must be a string, got {type(expr).__name__}")
    fields = expr.split()
    allowed = (5, 6) if seconds else (5,)
    if len(fields) not in allowed:
        want = "5 fields (or 6 with seconds first)" if seconds else "5 fields"
        raise CronError(f"{expr!r} has {len(fields)} fields; cron needs {want}")
    try:
        it = croniter(expr, datetime(2000, 1, 1), second_at_beginning=len(fields) == 6)
    except (ValueError, KeyError) as exc:  # croniter raises subclasses of both
        raise CronError(f"{expr!r} is not a valid cron expression: {exc}") from exc
    try:
        # croniter parses `0 2 30 2 *` (February 30th) happily and fails only when asked for
        # a fire time; ask once here, from a leap year, so it fails at definition instead.
        it.get_next(datetime)
    except CroniterBadDateError:
        raise CronError(f"{expr!r} never fires (no date matches it)") from None
    return expr


def next_fire(expr: str, after: datetime, zone: ZoneInfo) -> datetime:
    """First instant strictly after `after` at which `expr` fires in `zone`, in UTC."""
    if after.tzinfo is None:
        raise ValueError("next_fire needs an aware datetime; naive times are ambiguous")
    local = after.astimezone(zone)
    it = croniter(expr, local.replace(tzinfo=None), second_at_beginning=_has_seconds(expr))
    while True:
        instant = _place(it.get_next(datetime), zone)
        # In a repeated hour the wall clock goes back, so an early candidate can sit before
        # `after` on the timeline; keep iterating until one is truly later.
        if instant > after:
            return instant


def previous_fire(expr: str, at_or_before: datetime, zone: ZoneInfo) -> datetime:
    """Last instant at or before `at_or_before` at which `expr` fires in `zone`, in UTC."""
    if at_or_before.tzinfo is None:
        raise ValueError("previous_fire needs an aware datetime; naive times are ambiguous")
    # croniter's is_prev is strictly-before and works in whole seconds: start one second
    # later so a fire exactly at `at_or_before` counts.
    local = at_or_before.astimezone(zone).replace(tzinfo=None) + timedelta(seconds=1)
    it = croniter(expr, local, is_prev=True, second_at_beginning=_has_seconds(expr))
    while True:
        instant = _place(it.get_prev(datetime), zone)
        if instant <= at_or_before:
            return instant


def _has_seconds(expr: str) -> bool:
    return len(expr.split()) == 6


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    """Put a naive wall-clock time on the timeline (fold=0: first occurrence, or the
    pre-transition offset for a time inside a spring-forward gap)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
