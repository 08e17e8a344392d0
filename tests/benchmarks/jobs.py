"""This project's benchmark workers (WORKER_PACKAGES=tests.benchmarks.jobs).

Owns the workerpool side of every workload; `plain_celery.py` holds the same workloads as
plain Celery tasks. Jobs that measure something write one value to Redis per run, the same
write on both sides, so the recording costs both systems equally.
"""

from __future__ import annotations

import time

from tests.benchmarks.names import CRITICAL_STARTS, DUE_LAGS
from worker_runtime import Worker, current


class Noop(Worker):
    """The drain and enqueue workload: one small argument, no work."""

    task_name = "bench.noop"

    @classmethod
    def perform(cls, n: int) -> None:
        return None


class Low10ms(Worker):
    """The priority scenario's backlog: 10 ms of (sleeping) work on `low`."""

    queue = "low"
    task_name = "bench.low10ms"

    @classmethod
    def perform(cls, n: int) -> None:
        time.sleep(0.01)


class CriticalMarker(Worker):
    """Records when it starts, so latency = start - enqueue time (same clock, same host)."""

    queue = "critical"
    task_name = "bench.critical"

    @classmethod
    def perform(cls, probe: int) -> None:
        current().redis.rpush(CRITICAL_STARTS, f"{probe} {time.time()!r}")


class DueRecorder(Worker):
    """Records how late it started relative to the due time it carries."""

    task_name = "bench.due"

    @classmethod
    def perform(cls, due: float) -> None:
        current().redis.rpush(DUE_LAGS, repr(time.time() - due))
