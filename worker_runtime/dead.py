"""The dead-job store: jobs that failed their last retry, kept in Redis for a person to act on.

Owns the record format and list/retry/purge. A job reaches it only from `execution.py`, after
its final attempt, so nothing is dropped silently. Bounded like Sidekiq's dead set: beyond
`max_jobs` the oldest records go.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

from worker_runtime.enqueue import push
from worker_runtime.keys import Keys
from worker_runtime.messages import build_message


@dataclass(frozen=True)
class DeadJob:
    id: str
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    error: str
    traceback: str
    attempts: int
    started_at: float
    failed_at: float


class DeadJobs:
    def __init__(self, client: redis.Redis, keys: Keys, max_jobs: int = 10_000) -> None:
        self._client = client
        self._keys = keys
        self._max_jobs = max_jobs

    def add(self, job: DeadJob) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(self._keys.dead_records, job.id, json.dumps(asdict(job)))
            pipe.zadd(self._keys.dead, {job.id: job.failed_at})
            # Trim the oldest beyond the cap (ranks 0 .. -(max+1)).
            pipe.zrange(self._keys.dead, 0, -(self._max_jobs + 1))
            pipe.zremrangebyrank(self._keys.dead, 0, -(self._max_jobs + 1))
            overflow = pipe.execute()[2]
        if overflow:
            self._client.hdel(self._keys.dead_records, *overflow)

    def count(self) -> int:
        return int(self._client.zcard(self._keys.dead))

    def list(self, limit: int = 50) -> list[DeadJob]:
        """Most recent first."""
        ids = cast(list[bytes], self._client.zrevrange(self._keys.dead, 0, limit - 1))
        if not ids:
            return []
        raws = self._client.hmget(self._keys.dead_records, ids)
        return [DeadJob(**json.loads(raw)) for raw in raws if raw is not None]

    def get(self, job_id: str) -> DeadJob | None:
        raw = self._client.hget(self._keys.dead_records, job_id)
        return None if raw is None else DeadJob(**json.loads(raw))

    def retry(self, job_id: str) -> bool:
        """Queue the job again under the same id, with a fresh retry budget."""
        job = self.get(job_id)
        if job is None:
            return False
        message = build_message(
            task_name=job.task, job_id=job.id, queue=job.queue, args=job.args, kwargs=job.kwargs
        )
        push(self._client, job.queue, message)
        self._remove(job_id)
        return True

    def purge(self, job_id: str | None = None) -> int:
        if job_id is not None:
            return self._remove(job_id)
        n = self.count()
        self._client.delete(self._keys.dead, self._keys.dead_records)
        return n

    def _remove(self, job_id: str) -> int:
        with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys.dead, job_id)
            pipe.hdel(self._keys.dead_records, job_id)
            removed, _ = pipe.execute()
        return int(removed)
