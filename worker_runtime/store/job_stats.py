"""Job counters and durations per task, kept in Redis for the operator's Prometheus metrics.

Every finished attempt adds to two hashes (3 to 5 commands):
`workerpool:stats:jobs` field `TASK<TAB>OUTCOME` (outcomes: processed for every attempt, and
failed, retried or dead for the failing ones), and `workerpool:stats:duration` field
`TASK<TAB>LE` for the one histogram bucket the attempt's duration falls in, plus `TASK<TAB>sum`.
The operator (operator load.py) reads both hashes and exposes them as a counter and a
histogram labelled by namespace, pool and task. Counters in Redis survive worker restarts, as
Prometheus counters should across scrapes of one operator.

The counts travel with the attempt's result write, in the same Lua script (results.py), so
they cost no round trip of their own: `defer` leaves them on the Celery request that the
result backend receives, and `take` picks them up there. An attempt whose result is not stored
(a task that ignores results) is counted with `record`, its own pipelined round trip, where a
failure to count never fails the job. Must not touch messages or job state.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Literal

import redis

log = logging.getLogger(__name__)

JOBS_KEY: Final = "workerpool:stats:jobs"
DURATION_KEY: Final = "workerpool:stats:duration"
#: Upper bounds (seconds) of the duration histogram; the operator reads the same ones.
BUCKETS: Final = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

Outcome = Literal["succeeded", "retried", "dead"]


def bucket(seconds: float) -> str:
    """The label of the first bucket holding `seconds` ("+Inf" past the last)."""
    for bound in BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


def record(client: redis.Redis, task: str, outcome: Outcome, seconds: float) -> None:
    jobs, bucket_field, sum_field, seconds = fields(task, outcome, seconds)
    try:
        with client.pipeline(transaction=False) as pipe:
            for field in jobs:
                pipe.hincrby(JOBS_KEY, field, 1)
            pipe.hincrby(DURATION_KEY, bucket_field, 1)
            pipe.hincrbyfloat(DURATION_KEY, sum_field, seconds)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("job statistics not recorded for %s: %s", task, exc)


def fields(task: str, outcome: Outcome, seconds: float) -> tuple[list[str], str, str, float]:
    """(counter fields of JOBS_KEY to add 1 to, bucket field and sum field of DURATION_KEY,
    seconds): what `record` writes, for the result script to write instead."""
    seconds = max(0.0, seconds)
    jobs = [f"{task}\tprocessed"]
    if outcome != "succeeded":
        jobs += [f"{task}\tfailed", f"{task}\t{outcome}"]
    return jobs, f"{task}\t{bucket(seconds)}", f"{task}\tsum", seconds


#: Attribute of the Celery request (its `Context`) carrying the deferred counts.
_FIELD = "workerpool_stats"


def defer(client: redis.Redis, request: Any, task: str, outcome: Outcome, seconds: float) -> None:
    """Count with the attempt's result write, or now if no result will be written."""
    if request is None or getattr(request, "ignore_result", False):
        record(client, task, outcome, seconds)
        return
    setattr(request, _FIELD, fields(task, outcome, seconds))


def take(request: Any) -> tuple[list[str], str, str, float] | None:
    """The counts `defer` left on `request` (once: a second write must not count again)."""
    found: tuple[list[str], str, str, float] | None = getattr(request, _FIELD, None)
    if found is not None:
        setattr(request, _FIELD, None)
    return found
