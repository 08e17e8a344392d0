"""Leases: a live worker keeps its jobs from being redelivered, however long they run.

kombu's Redis transport keeps each delivered, unacked message in the `unacked` hash and its
delivery tag in the `unacked_index` sorted set, scored by delivery time; every consumer
periodically puts back messages whose score is older than `visibility_timeout`. That timeout
therefore had to exceed the longest job, and a killed worker's jobs waited that long to run
again. Here the pod's duties process (duties.py) rewrites the score of every message its job
slots hold, read from the slot board, every `visibility_timeout / 3` seconds, so the timeout
becomes a lease: short (60 s by default, so a dead worker's jobs are back within about 70 s),
and never reached while the worker lives. A plain thread in a process of its own does it, so
renewal continues while a slot is blocked in its job or stopped for a warm shutdown.

Must not ack, restore or otherwise touch messages: only the scores of our own delivery tags.
"""

from __future__ import annotations

import logging
import mmap
import struct
import threading
from collections.abc import Callable, Iterable
from time import monotonic, time

import redis

log = logging.getLogger(__name__)

#: kombu's default name of the sorted set (`Channel.unacked_index_key`); app.py leaves it as is.
UNACKED_INDEX = "unacked_index"


def held_delivery_tags() -> list[str]:
    """Delivery tags of every request this worker process has reserved (running included)."""
    from celery.worker import state

    while True:
        try:
            requests = list(state.reserved_requests)
            break
        except RuntimeError:  # the set changed size while copied; copy again
            continue
    tags = []
    for request in requests:
        tag = getattr(getattr(request, "message", None), "delivery_tag", None)
        if tag is not None:
            tags.append(str(tag))
    return tags


def renew(client: redis.Redis, tags: Iterable[str], now: float) -> int:
    """Move the score of each still-unacked tag to `now`; return how many were renewed.

    `XX` updates only members that exist: a message acked meanwhile is not brought back.
    """
    mapping = dict.fromkeys(tags, now)
    if not mapping:
        return 0
    changed: int = client.zadd(UNACKED_INDEX, mapping, xx=True, ch=True)  # type: ignore[assignment]
    return changed


_STAMP = struct.Struct("<d")


class RenewalClock:
    """When leases were last renewed (`time.monotonic()`), in memory shared with every process
    forked after it was made: the duties process writes it, the supervisor reads it (issue
    20: a renewer that stops, frozen or with a dead thread, must not go unnoticed)."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _STAMP.size)

    def mark(self, now: float) -> None:
        _STAMP.pack_into(self._map, 0, now)

    def last(self) -> float:
        return float(_STAMP.unpack_from(self._map, 0)[0])


class LeaseKeeper:
    """A daemon thread renewing the process's leases every `interval` seconds, and again after
    `retry` seconds when a pass fails. Any error but Redis's ends the thread: its owner
    (duties.py) then exits, to be started again."""

    def __init__(
        self,
        client: redis.Redis,
        interval: float,
        tags: Callable[[], list[str]] = held_delivery_tags,
        renewed: RenewalClock | None = None,
        retry: float = 1.0,
    ) -> None:
        self._client = client
        self._interval = interval
        self._retry = min(retry, interval)
        self._tags = tags
        self._renewed = renewed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workerpool-lease", daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        log.info("renewing job leases every %.1fs", self._interval)
        while not self._stop.is_set():
            wait = self._interval
            try:
                renewed = renew(self._client, self._tags(), time())
                if self._renewed is not None:
                    self._renewed.mark(monotonic())
                log.debug("renewed %d lease(s)", renewed)
            except redis.RedisError as exc:
                # Redis may be restarting: try again soon, not a whole interval later.
                log.warning("lease renewal failed, retrying in %.1fs: %s", self._retry, exc)
                wait = self._retry
            self._stop.wait(wait)
