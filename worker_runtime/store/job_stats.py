"""Job counters and durations per task, kept in Redis for the operator's Prometheus metrics.

Every finished attempt adds to two hashes (3 to 5 commands), and to the minute's and the day's
timeline hashes (the dashboard's processed/failed history, below):
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
import time
from dataclasses import dataclass
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


#: Pool-wide timelines for the dashboard: one hash per minute and one per day (epoch // 60 and
#: epoch // 86400 in the key), fields `processed`, `failed` and `QUEUE<TAB>processed|failed`,
#: each expiring once it leaves the window the pages show: bounded, whatever the job rate.
MINUTE_PREFIX: Final = "workerpool:stats:minute:"
DAY_PREFIX: Final = "workerpool:stats:day:"
MINUTE_TTL: Final = 2 * 3600
DAY_TTL: Final = 32 * 86_400


@dataclass(frozen=True)
class Counts:
    """What one attempt adds: `record` writes it, or the result script does (results.py)."""

    #: Fields of JOBS_KEY to add 1 to.
    jobs: list[str]
    #: Duration bucket and sum fields of DURATION_KEY, and the seconds.
    bucket: str
    sum: str
    seconds: float
    #: Fields of the minute and day hashes to add 1 to, and those hashes' keys.
    timeline: list[str]
    minute_key: str
    day_key: str


def fields(task: str, outcome: Outcome, seconds: float, queue: str, now: float) -> Counts:
    seconds = max(0.0, seconds)
    jobs = [f"{task}\tprocessed"]
    timeline = ["processed"]
    if outcome != "succeeded":
        jobs += [f"{task}\tfailed", f"{task}\t{outcome}"]
        timeline.append("failed")
    if queue:
        timeline += [f"{queue}\t{name}" for name in list(timeline)]
    return Counts(
        jobs,
        f"{task}\t{bucket(seconds)}",
        f"{task}\tsum",
        seconds,
        timeline,
        minute_key(now),
        day_key(now),
    )


def minute_key(epoch: float) -> str:
    return f"{MINUTE_PREFIX}{int(epoch // 60)}"


def day_key(epoch: float) -> str:
    return f"{DAY_PREFIX}{int(epoch // 86_400)}"


def record(client: redis.Redis, counts: Counts) -> None:
    try:
        with client.pipeline(transaction=False) as pipe:
            for field in counts.jobs:
                pipe.hincrby(JOBS_KEY, field, 1)
            pipe.hincrby(DURATION_KEY, counts.bucket, 1)
            pipe.hincrbyfloat(DURATION_KEY, counts.sum, counts.seconds)
            for key, ttl in ((counts.minute_key, MINUTE_TTL), (counts.day_key, DAY_TTL)):
                for field in counts.timeline:
                    pipe.hincrby(key, field, 1)
                pipe.expire(key, ttl)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("job statistics not recorded for %s: %s", counts.jobs[0], exc)


#: Attribute of the Celery request (its `Context`) carrying the deferred counts.
_FIELD = "workerpool_stats"


def defer(client: redis.Redis, request: Any, task: str, outcome: Outcome, seconds: float) -> None:
    """Count with the attempt's result write, or now if no result will be written."""
    info = getattr(request, "delivery_info", None) or {}
    counts = fields(task, outcome, seconds, str(info.get("routing_key") or ""), time.time())
    if request is None or getattr(request, "ignore_result", False):
        record(client, counts)
        return
    setattr(request, _FIELD, counts)


def take(request: Any) -> Counts | None:
    """The counts `defer` left on `request` (once: a second write must not count again)."""
    found: Counts | None = getattr(request, _FIELD, None)
    if found is not None:
        setattr(request, _FIELD, None)
    return found
