"""How a job's times and arguments read to a person, the same in the CLI and on the pages:
relative times ("in 5m", "3m ago", "now"; never "in -9s"), UTC stamps, values cut to one line.
Pure: the current time is passed in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def relative(epoch: float | None, now: float) -> str:
    """'in 5m', '3m ago', 'now' (within a second), '-' for none; never 'in -9s'."""
    if epoch is None:
        return "-"
    delta = epoch - now
    if abs(delta) < 1:
        return "now"
    span = _span(abs(delta))
    return f"in {span}" if delta > 0 else f"{span} ago"


def _span(seconds: float) -> str:
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "m")):
        if seconds >= size:
            whole, rest = divmod(int(seconds), size)
            smaller = {"d": (3_600, "h"), "h": (60, "m"), "m": (1, "s")}[unit]
            part = rest // smaller[0]
            return f"{whole}{unit}{part}{smaller[1]}" if part and whole < 10 else f"{whole}{unit}"
    return f"{int(seconds)}s"


def stamp(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cut(value: Any, width: int = 40) -> str:
    """One line of at most `width` characters ('…' marks a cut)."""
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def duration(seconds: float | None) -> str:
    """How long something has run or waited: '45s', '3m05s', '2h04m', '3d2h'; '-' for none."""
    if seconds is None:
        return "-"
    return _span(max(0.0, seconds)) if seconds >= 60 else f"{max(0, int(seconds))}s"


def arguments(args: list[Any], kwargs: dict[str, Any], width: int = 80) -> str:
    """A job's arguments as its call reads: '1, "x", user_id=42', cut to `width`."""
    parts = [json.dumps(value, default=repr) for value in args]
    parts += [f"{name}={json.dumps(value, default=repr)}" for name, value in kwargs.items()]
    return cut(", ".join(parts), width)
