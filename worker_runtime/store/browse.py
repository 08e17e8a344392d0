"""Reading a window of a long sorted set of jobs, with or without a filter, at a cost that does
not grow with the set: one ZRANGE by rank for a plain window; for a filtered one, ranks are
scanned in chunks from the window's start until it is full or SCAN_BUDGET entries were looked
at (the next window continues from there). Used by the Scheduled, Retries and Dead lists of
the CLI and the pages. Must not change anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import redis

T = TypeVar("T")

#: Entries one filtered window may look at before it stops and offers to continue.
#: 500 entries keep a filtered page under 200 ms on a busy 2-core machine
#: (tests/benchmarks/pages.py; 1,000 took up to 280 ms with a text filter).
SCAN_BUDGET = 500
CHUNK = 250

#: Turns (job id, score) entries into items; None for an id whose record has gone.
Loader = Callable[[Sequence[tuple[str, float]]], Sequence[T | None]]


class UnknownJobError(LookupError):
    """A job id that is not in the set the command or page acts on."""


@dataclass(frozen=True)
class Window(Generic[T]):
    items: list[T]
    #: Entries in the whole set (unfiltered).
    total: int
    #: Rank this window started at.
    offset: int
    #: Rank the next window starts at; None when the set is exhausted.
    next_offset: int | None
    filtered: bool


def read_window(
    client: redis.Redis,
    key: str,
    load: Loader[T],
    *,
    offset: int,
    limit: int,
    match: Callable[[T], bool] | None = None,
    newest_first: bool = False,
) -> Window[T]:
    total = int(client.zcard(key))
    rank = max(0, offset)
    items: list[T] = []
    budget_end = rank + (limit if match is None else SCAN_BUDGET)
    while rank < min(total, budget_end) and len(items) < limit:
        size = limit if match is None else CHUNK
        raw = cast(
            list[tuple[bytes, float]],
            client.zrange(key, rank, rank + size - 1, desc=newest_first, withscores=True),
        )
        if not raw:
            break
        entries = [(member.decode(), score) for member, score in raw]
        for item in load(entries):
            rank += 1
            if item is not None and (match is None or match(item)):
                items.append(item)
                if len(items) == limit:
                    break
    return Window(items, total, offset, rank if rank < total else None, match is not None)
