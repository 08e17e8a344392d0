"""Cron expressions: validation and next-fire computation with the time passed in.

Pure (python-arq's `next_cron` is the model): the caller supplies `after`; nothing here reads
the clock, so tests are a table. croniter parses and iterates the expression; this module adds
what croniter leaves to its caller: time zones with DST handled as cron users expect.

Expressions are iterated in naive local wall-clock time and each match is then placed on the
timeline. That gives the classic cron answers at DST changes:
- a wall time that does not exist (spring forward) fires once, at the same offset from the
  gap's start it would have had (02:30 fires at 03:30);
- a wall time that happens twice (fall back) fires once, on its first occurrence, unless the
  hour field is a wildcard (`*`, `*/2`): an hourly or every-15-minutes schedule fires in the
  repeated hour too, once per real hour, as Vixie cron does for wildcard jobs. So an hourly job
  neither skips the repeated hour nor fires twice at one instant.
Two matches that land on the same instant fire once.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    start = after.astimezone(zone).replace(tzinfo=None)
    if (after - _NEAR).astimezone(zone).utcoffset() != (after + _NEAR).astimezone(zone).utcoffset():
        # A clock change is near: a match in the repeated hour can have an earlier wall time
        # than `after`'s (its second pass), so start the walk before it.
        start -= _NEAR
    it = croniter(expr, start, second_at_beginning=_has_seconds(expr))
    repeat = _hour_is_wildcard(expr)
    best: datetime | None = None
    while True:
        wall = it.get_next(datetime)
        first = _place(wall, zone)
        if best is not None and first >= best:
            # Later wall times land later on the timeline, in either pass.
            return best
        for instant in _instants(wall, first, zone, repeat):
            if instant > after and (best is None or instant < best):
                best = instant


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


#: Farther than any clock change moves the wall clock (one hour nearly everywhere).
_NEAR = timedelta(hours=3)


def _instants(wall: datetime, first: datetime, zone: ZoneInfo, repeat: bool) -> Iterator[datetime]:
    yield first
    if repeat:
        second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if second > first:  # a repeated wall time (in a spring gap, fold=1 is earlier)
            yield second


def _has_seconds(expr: str) -> bool:
    return len(expr.split()) == 6


def _hour_is_wildcard(expr: str) -> bool:
    fields = expr.split()
    return fields[2 if len(fields) == 6 else 1].startswith("*")


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    """Put a naive wall-clock time on the timeline (fold=0: first occurrence, or the
    pre-transition offset for a time inside a spring-forward gap)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
