"""The three job queues and their strict order.

Owns the queue names only. Must not talk to Redis: the transport settings that make the order
strict live in `app.py`, and a test proves the order with real processes.
"""

from typing import Final

CRITICAL: Final = "critical"
DEFAULT: Final = "default"
LOW: Final = "low"

#: Highest priority first. Workers consume in this order and never start a lower-priority job
#: while a higher-priority one waits.
QUEUES: Final[tuple[str, ...]] = (CRITICAL, DEFAULT, LOW)


class UnknownQueueError(ValueError):
    """A queue name outside critical/default/low."""


def check_queue(queue: object, owner: str) -> str:
    """Return `queue` if it is one of QUEUES, else raise naming `owner` and the bad value."""
    if not isinstance(queue, str) or queue not in QUEUES:
        raise UnknownQueueError(f"{owner}: queue {queue!r} is not one of {', '.join(QUEUES)}")
    return queue


def parse_queue_list(value: str) -> tuple[str, ...]:
    """Parse a comma-separated queue list (CLI `--queues`) keeping the strict order."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise UnknownQueueError(f"--queues {value!r}: name at least one of {', '.join(QUEUES)}")
    for name in names:
        check_queue(name, "--queues")
    # Consumption order is the priority order whatever order the user typed.
    return tuple(q for q in QUEUES if q in names)
