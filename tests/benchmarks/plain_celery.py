"""The plain Celery baseline: an app with the same workloads as `jobs.py`, nothing of ours.

Run as `celery -A tests.benchmarks.plain_celery worker ...` (the harness does); the runner
process imports it too, to call `apply_async`. Configured from the environment so the worker
subprocess and the runner agree:

- BENCH_CELERY_BROKER: Redis URL (same server as workerpool, another database).
- BENCH_CELERY_PROFILE: `guarantees` = what workerpool promises (late ack, reject on worker
  lost, prefetch 1, strict queue priority; events come from `-E` on the command line),
  `features` = `guarantees` plus the two result settings workerpool also turns on
  (`task_track_started`, `result_extended`), so the drain can tell the cost of those features
  from the cost of our code, or `defaults` = Celery's own defaults (prefetch 4, early ack,
  round-robin queues, no events).

Both profiles keep a Redis result backend on the same database, because workerpool's
`perform_async` returns a working `AsyncResult` and a Celery user who wants the same
configures one. Must not import `worker_runtime`: the baseline must not share our code.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery
from kombu.entity import Exchange, Queue

from tests.benchmarks.names import CRITICAL_STARTS, DUE_LAGS

QUEUES = ("critical", "default", "low")
GUARANTEES = "guarantees"
FEATURES = "features"
DEFAULTS = "defaults"
PROFILES = (GUARANTEES, FEATURES, DEFAULTS)

app = Celery("plain_celery")
_recorder: redis.Redis | None = None


def configure(broker_url: str, profile: str) -> Celery:
    """(Re)configure `app`; must run before the app first connects."""
    if profile not in PROFILES:
        raise ValueError(f"BENCH_CELERY_PROFILE={profile!r}: expected one of {PROFILES}")
    conf: dict[str, Any] = {
        "broker_url": broker_url,
        "result_backend": broker_url,
        "task_queues": [
            Queue(q, Exchange(q, type="direct"), routing_key=q)  # type: ignore[no-untyped-call]
            for q in QUEUES
        ],
        "task_default_queue": "default",
        "task_routes": {
            "plain.low10ms": {"queue": "low"},
            "plain.critical": {"queue": "critical"},
        },
        "broker_connection_retry_on_startup": True,
    }
    if profile in (GUARANTEES, FEATURES):
        conf.update(
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=1,
            broker_transport_options={"queue_order_strategy": "priority"},
        )
    if profile == FEATURES:
        conf.update(task_track_started=True, result_extended=True)
    app.conf.update(conf)
    return app


configure(
    os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/2"),
    os.environ.get("BENCH_CELERY_PROFILE", GUARANTEES),
)


def _redis() -> redis.Redis:
    # One client per process, made in the pool child (after fork), like workerpool's runtime.
    global _recorder
    if _recorder is None:
        _recorder = redis.Redis.from_url(app.conf.broker_url)
    return _recorder


@app.task(name="plain.noop")  # type: ignore[misc]
def noop(n: int) -> None:
    return None


@app.task(name="plain.low10ms")  # type: ignore[misc]
def low10ms(n: int) -> None:
    time.sleep(0.01)


@app.task(name="plain.critical")  # type: ignore[misc]
def critical(probe: int) -> None:
    _redis().rpush(CRITICAL_STARTS, f"{probe} {time.time()!r}")


@app.task(name="plain.due")  # type: ignore[misc]
def due(due: float) -> None:
    _redis().rpush(DUE_LAGS, repr(time.time() - due))
