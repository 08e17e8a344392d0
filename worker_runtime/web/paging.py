"""What a page shows of a long list: the window's summary line and its First/Previous/Next
links, for the `pager.html` template. Pure: callers pass the URLs they built (a page knows
its own query arguments). Must not read Redis: windows are read by `store/` with
ZRANGE/LRANGE ranges, never by loading a whole set.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Pager:
    summary: str
    first_url: str | None = None
    prev_url: str | None = None
    next_url: str | None = None


def shown(start: int, count: int, total: int, noun: str = "job") -> str:
    """'51-100 of 100,000 jobs', '0 jobs', '1 job'."""
    plural = noun if total == 1 else f"{noun}s"
    if count == 0:
        return f"none of {total:,} {plural}" if total else f"0 {plural}"
    return f"{start + 1:,}-{start + count:,} of {total:,} {plural}"
