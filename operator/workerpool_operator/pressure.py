"""Redis memory pressure: when the pool's Redis nears its `maxmemory`, the status says so.

The managed Redis runs with `maxmemory` and `noeviction` (builders/redis.py): when full it
refuses new jobs rather than dropping any, so a producer's enqueue fails. The pool reports
that before and while it happens, as a Stalled problem (someone must raise the memory limit or
drain the backlog). Percentages are whole numbers so a steady Redis writes no new status.
Pure: takes the figures of Redis's `INFO memory`; no I/O.
"""

from __future__ import annotations

from typing import Final

from workerpool_operator.status import Problem

#: Share of maxmemory from which the pool reports pressure.
PRESSURE_PERCENT: Final = 90


def memory_problem(redis: str, used: int, maxmemory: int) -> Problem | None:
    """A problem when `used` is at PRESSURE_PERCENT of `maxmemory` or beyond (0: no limit)."""
    if maxmemory <= 0:
        return None
    percent = used * 100 // maxmemory
    if percent < PRESSURE_PERCENT:
        return None
    state = "is full: new jobs are refused" if used >= maxmemory else "is nearly full"
    return Problem(
        "RedisMemoryFull",
        f"Redis {redis} {state} ({percent}% of its maxmemory {maxmemory // 2**20}Mi, kept "
        "below its memory limit so it is never OOM-killed); no job is lost. Drain the backlog "
        "or raise spec.redis.resources.limits.memory",
    )
