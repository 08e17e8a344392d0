"""The failed attempts of each job, newest last: what the Retries page shows as the last error
and a dead job's page as its attempt history.

One Redis list per job (`Keys.history`), written by `execution/attempt.py` when an attempt
fails, capped at HISTORY_LIMIT entries and expiring HISTORY_TTL after the last failure so an
abandoned job's history cannot outlive it for long. Must not decide retries or move jobs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import redis

from worker_runtime.core.keys import Keys

HISTORY_LIMIT = 25
HISTORY_TTL = 30 * 24 * 3600


@dataclass(frozen=True)
class FailedAttempt:
    #: 1 for the first run.
    attempt: int
    error: str
    traceback: str
    failed_at: float


def record(client: redis.Redis, keys: Keys, job_id: str, failure: FailedAttempt) -> None:
    key = keys.history(job_id)
    with client.pipeline(transaction=False) as pipe:
        pipe.rpush(key, json.dumps(asdict(failure)))
        pipe.ltrim(key, -HISTORY_LIMIT, -1)
        pipe.expire(key, HISTORY_TTL)
        pipe.execute()


def history(client: redis.Redis, keys: Keys, job_id: str) -> list[FailedAttempt]:
    raws = client.lrange(keys.history(job_id), 0, -1)
    return [FailedAttempt(**json.loads(raw)) for raw in raws]


def last_failures(
    client: redis.Redis, keys: Keys, job_ids: Sequence[str]
) -> dict[str, FailedAttempt]:
    """The newest failure of each of `job_ids` that has one (one round trip)."""
    if not job_ids:
        return {}
    with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.lindex(keys.history(job_id), -1)
        raws = pipe.execute()
    return {
        job_id: FailedAttempt(**json.loads(raw))
        for job_id, raw in zip(job_ids, raws, strict=True)
        if raw is not None
    }


def forget(client: redis.Redis, keys: Keys, job_ids: Sequence[str]) -> None:
    for start in range(0, len(job_ids), 1000):
        client.delete(*(keys.history(job_id) for job_id in job_ids[start : start + 1000]))
