"""Per-pod load report: how many jobs this worker holds and runs, per queue, kept in Redis.

The operator reads every pool's load from Redis in one round trip (operator load.py); what
only a worker knows is which of the messages it took are running and from which queue. The
duties process (duties.py, summing the slot board) writes one field of the hash
`workerpool:load:pods` (field: the pod name, i.e. the host name; value: JSON
`{"expires", "ttl", "queues": {queue: {"reserved", "running"}}}`) every `interval` seconds
from a daemon thread, so the report also continues through a warm shutdown. A report is
trusted until `expires` (three intervals): a killed pod's report lapses on its own, and the
operator deletes long-expired fields. One HSET per interval and pod. Must not touch messages
or leases.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from time import time

import redis

log = logging.getLogger(__name__)

#: Read by the operator (operator load.py LOAD_KEY; a contract test keeps them equal).
LOAD_KEY = "workerpool:load:pods"
#: Fresh enough for pod-deletion costs, cheap enough for hundreds of pods.
INTERVAL_SECONDS = 5.0


def report(
    client: redis.Redis, pod: str, queues: dict[str, dict[str, int]], now: float, ttl: float
) -> None:
    value = json.dumps({"expires": now + ttl, "ttl": ttl, "queues": queues}, sort_keys=True)
    client.hset(LOAD_KEY, pod, value)


class LoadReporter:
    """A daemon thread writing this process's report every `interval` seconds."""

    def __init__(
        self,
        client: redis.Redis,
        read: Callable[[], dict[str, dict[str, int]]],
        interval: float = INTERVAL_SECONDS,
        pod: str | None = None,
    ) -> None:
        self._client = client
        self._interval = interval
        self._read = read
        self._pod = pod or socket.gethostname()  # the pod name in Kubernetes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workerpool-load", daemon=True)

    def start(self) -> LoadReporter:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report(self._client, self._pod, self._read(), time(), 3 * self._interval)
            except redis.RedisError as exc:
                # Informational only: the report lapses and the operator falls back to
                # kombu's unacked hash until Redis is back.
                log.warning("load report failed, retrying: %s", exc)
            self._stop.wait(self._interval)
