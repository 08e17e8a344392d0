"""The due-job dispatcher: a thread that moves jobs from the schedule set onto their queues
when they fall due (one Lua pass, store/schedule_set.py), sleeping until the next due job.

Runs in the worker's duties process and in beat. Must not change the set other than through
`ScheduleSet`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis

from worker_runtime.store.schedule_set import Pass, ScheduleSet

log = logging.getLogger(__name__)

#: Shortest sleep between passes while jobs keep falling due: bounds each dispatcher to 100
#: passes a second however dense the due times.
MIN_WAIT = 0.01


class Dispatcher:
    """A daemon thread moving due jobs until stopped.

    After each pass it sleeps until the earliest due job, never longer than `interval`, so a
    due job waits at most `MIN_WAIT` plus a pass instead of up to an interval, and an idle
    schedule set costs one round trip per interval, as a fixed-interval poll does. A job
    scheduled due sooner than the planned wake-up publishes its due time (`schedule`), which
    shortens the sleep.
    """

    def __init__(
        self,
        schedule_set: ScheduleSet,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._set = schedule_set
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._pubsub: redis.client.PubSub | None = None
        self._thread = threading.Thread(target=self._run, name="workerpool-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            # Wakes the thread if it waits on the subscription (other dispatchers on this Redis
            # just make one early pass); if Redis is gone, it notices within an interval.
            self._set.wake()
        self._thread.join(timeout)

    def run_once(self) -> int:
        return self._pass().moved

    def _pass(self) -> Pass:
        done = self._set.dispatch(self._clock())
        if done.moved:
            log.debug("dispatched %d scheduled job(s)", done.moved)
        return done

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    next_due = self._pass().next_due
                except redis.RedisError as exc:
                    # Redis may restart under us; the jobs are safe in it, so retry next pass.
                    log.warning("scheduled-job dispatch failed, retrying: %s", exc)
                    next_due = None
                self._sleep(self._wait_until(next_due))
        finally:
            if self._pubsub is not None:
                self._pubsub.close()

    def _wait_until(self, due: float | None) -> float:
        return next_wait(due, self._clock(), self._interval)

    def _sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or less if a job due sooner is scheduled meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                if self._pubsub is None:
                    self._pubsub = self._set.listen()
                message = self._pubsub.get_message(timeout=remaining)
            except (redis.RedisError, OSError, ValueError) as exc:
                # Without the subscription a pass still comes every interval; retry it later.
                log.debug("schedule wake subscription failed: %s", exc)
                self._drop_subscription()
                self._stop.wait(remaining)
                return
            if message is not None and message.get("type") == "message":
                due = _epoch(message.get("data"))
                if due is not None:
                    deadline = min(deadline, time.monotonic() + max(0.0, due - self._clock()))

    def _drop_subscription(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
            self._pubsub = None


def next_wait(next_due: float | None, now: float, interval: float) -> float:
    """Seconds a dispatcher sleeps after a pass: until the next due job, at most `interval`,
    at least `MIN_WAIT`."""
    if next_due is None:
        return interval
    return min(interval, max(MIN_WAIT, next_due - now))


def _epoch(data: object) -> float | None:
    try:
        return float(data.decode() if isinstance(data, bytes) else str(data))
    except ValueError:
        return None
