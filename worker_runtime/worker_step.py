"""The worker's own additions to a Celery worker: a schedule dispatcher and a heartbeat.

A consumer bootstep, so both start when the worker is consuming and stop on shutdown. While
consuming, the heartbeat runs on the consumer's event-loop timer, so a wedged worker stops
beating and its liveness probe fails. During a warm shutdown the consumer is stopped while
running jobs finish; a plain thread keeps beating then, so the probe does not kill a worker
that is draining. Must not touch job execution.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, ClassVar

from celery import bootsteps

from worker_runtime import runtime
from worker_runtime.heartbeat import heartbeat_path, touch
from worker_runtime.schedule_set import Dispatcher, ScheduleSet

HEARTBEAT_INTERVAL = 5.0


class WorkerPoolStep(bootsteps.StartStopStep):  # type: ignore[misc]
    requires: ClassVar[set[str]] = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._dispatcher: Dispatcher | None = None
        self._timer: Any = None
        self._draining: threading.Event | None = None

    def start(self, parent: Any) -> None:
        if self._draining is not None:  # consumer restarted (e.g. broker reconnect)
            self._draining.set()
            self._draining = None
        rt = runtime.current()
        self._path = heartbeat_path(rt.settings.state_dir, "worker")
        touch(self._path)
        self._timer = parent.timer.call_repeatedly(HEARTBEAT_INTERVAL, touch, (self._path,))
        self._dispatcher = Dispatcher(ScheduleSet(rt.redis, rt.keys), rt.settings.dispatch_interval)
        self._dispatcher.start()

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
