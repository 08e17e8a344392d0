"""Job counters and durations per task, kept in Redis for the operator's Prometheus metrics.

Every finished attempt adds to two hashes in one round trip (3 commands, pipelined):
`workerpool:stats:jobs` field `TASK<TAB>OUTCOME` (outcomes: processed for every attempt, and
failed, retried or dead for the failing ones), and `workerpool:stats:duration` field
`TASK<TAB>LE` for the one histogram bucket the attempt's duration falls in, plus `TASK<TAB>sum`.
The operator (operator load.py) reads both hashes and exposes them as a counter and a
histogram labelled by namespace, pool and task. Counters in Redis survive worker restarts, as
Prometheus counters should across scrapes of one operator. A failure to count never fails the
job. Must not touch messages or job state.
"""

from __future__ import annotations

import logging
from typing import Final, Literal

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
    seconds = max(0.0, seconds)
    try:
        with client.pipeline(transaction=False) as pipe:
            pipe.hincrby(JOBS_KEY, f"{task}\tprocessed", 1)
            if outcome != "succeeded":
                pipe.hincrby(JOBS_KEY, f"{task}\tfailed", 1)
                pipe.hincrby(JOBS_KEY, f"{task}\t{outcome}", 1)
            pipe.hincrby(DURATION_KEY, f"{task}\t{bucket(seconds)}", 1)
            pipe.hincrbyfloat(DURATION_KEY, f"{task}\tsum", seconds)
            pipe.execute()
    except redis.RedisError as exc:
        log.warning("job statistics not recorded for %s: %s", task, exc)
