"""The worker's own additions to a Celery worker: a schedule dispatcher, a heartbeat and the
lease keeper.

A consumer bootstep, so they start when the worker is consuming and stop on shutdown. While
consuming, the heartbeat runs on the consumer's event-loop timer and beats only with evidence
that the consumer works: a fetch from Redis completed within `FETCH_STALE` seconds, or the
worker holds all the jobs its prefetch allows (so it rightly does not fetch). A consumer left
alive but idle (kombu reconnect bugs, a Redis that stopped answering) stops beating and its
liveness probe fails. During a warm shutdown the consumer is stopped while running jobs finish;
a plain thread keeps beating then, so the probe does not kill a worker that is draining. Must
not touch job execution.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from time import monotonic
from typing import Any, ClassVar

from celery import bootsteps
from celery.worker import state

from worker_runtime import runtime
from worker_runtime.heartbeat import heartbeat_path, touch
from worker_runtime.intake import fetches
from worker_runtime.lease import LeaseKeeper
from worker_runtime.schedule_set import Dispatcher, ScheduleSet

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0
#: An idle, healthy consumer completes a BRPOP every second (kombu's `brpop_timeout`).
FETCH_STALE = 10.0


class WorkerPoolStep(bootsteps.StartStopStep):  # type: ignore[misc]
    requires: ClassVar[set[str]] = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._dispatcher: Dispatcher | None = None
        self._timer: Any = None
        self._draining: threading.Event | None = None
        self._leases: LeaseKeeper | None = None

    def start(self, parent: Any) -> None:
        if self._draining is not None:  # consumer restarted (e.g. broker reconnect)
            self._draining.set()
            self._draining = None
        rt = runtime.current()
        if self._leases is None:
            # One per process, kept across consumer restarts and through a warm shutdown,
            # while running jobs still need their leases.
            self._leases = LeaseKeeper(rt.redis, rt.settings.visibility_timeout / 3).start()
        self._path = heartbeat_path(rt.settings.state_dir, "worker")
        touch(self._path)
        self._consumer = parent
        self._withheld = False
        self._timer = parent.timer.call_repeatedly(HEARTBEAT_INTERVAL, self._beat, ())
        self._dispatcher = Dispatcher(ScheduleSet(rt.redis, rt.keys), rt.settings.dispatch_interval)
        self._dispatcher.start()

    def _beat(self) -> None:
        last = fetches.last
        if (last is not None and monotonic() - last < FETCH_STALE) or self._saturated():
            touch(self._path)
            if self._withheld:
                log.info("consumer fetches again; heartbeat resumed")
                self._withheld = False
        elif not self._withheld:
            self._withheld = True
            log.warning(
                "consumer has not completed a fetch from Redis for %.0fs while it has room for "
                "jobs; withholding the heartbeat so the liveness probe fails",
                monotonic() - (last or 0.0) if last is not None else FETCH_STALE,
            )

    def _saturated(self) -> bool:
        qos = getattr(self._consumer, "qos", None)
        limit = int(getattr(qos, "value", 0) or 0)
        return limit > 0 and len(state.reserved_requests) >= limit

    def stop(self, _parent: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._draining = threading.Event()
            threading.Thread(
                target=_beat_until, args=(self._path, self._draining), daemon=True
            ).start()
        if self._dispatcher is not None:
            self._dispatcher.stop()
            self._dispatcher = None


def _beat_until(path: Path, done: threading.Event) -> None:
    while not done.wait(HEARTBEAT_INTERVAL):
        touch(path)
