"""Celery's worker heartbeat for a job slot whose event loop is blocked by its job.

Runs as a daemon thread inside a slot, only while a job runs. Must not touch the job or its
message: it only sends `worker-heartbeat` events for Flower.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.utils.nodenames import default_nodename, host_format
from celery.utils.sysinfo import load_average
from celery.worker import state

log = logging.getLogger(__name__)


class JobHeartbeat:
    """Celery's `worker-heartbeat` events for this slot while a job blocks its event loop.

    Celery sends them every 2 s from the loop, and Flower (celery.events.state) takes a node for
    offline two intervals after the last one, so any job over 4 s would turn the slot offline.
    A daemon thread sends them instead while a job runs, saying one job is active, over its own
    connection (a kombu producer must not be shared between threads).
    """

    def __init__(self, app: Any, hostname: str, interval: float = 2.0) -> None:
        self._app = app
        self._hostname = host_format(default_nodename(hostname))
        self._interval = interval
        self._running = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def job_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)
            self._thread.start()
        self._done.clear()
        self._running.set()

    def job_finished(self) -> None:
        self._running.clear()
        self._done.set()

    def _run(self) -> None:
        dispatcher = None
        while True:
            self._running.wait()
            while not self._done.wait(self._interval):
                try:
                    if dispatcher is None:
                        connection = self._app.connection_for_write()
                        dispatcher = self._app.events.Dispatcher(
                            connection, hostname=self._hostname, enabled=True, groups=["worker"]
                        )
                    dispatcher.send(
                        "worker-heartbeat",
                        freq=self._interval,
                        active=1,
                        processed=state.all_total_count[0],
                        loadavg=load_average(),
                        **state.SOFTWARE_INFO,
                    )
                except Exception as exc:  # informational only: Flower may show a gap
                    log.debug("job heartbeat not sent: %s", exc)
                    dispatcher = None
