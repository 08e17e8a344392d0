"""The dead-job store: jobs that failed their last retry, and messages that cannot run, kept in
Redis for a person to act on.

Owns the record format and list/retry/purge. Jobs reach it from `execution.py` after their final
attempt (an exception, a lost worker process, a result JSON cannot carry); messages that are
not runnable jobs (not JSON, not an envelope, an unknown task) reach it from `intake.py` with
their raw body, so nothing is dropped silently. Bounded like Sidekiq's dead set: beyond
`max_jobs` the oldest records go. Must not run jobs or decide retries.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import build_message
from worker_runtime.core.queues import DEFAULT, QUEUES
from worker_runtime.store.enqueue import push

#: Bytes of an unrunnable message's body kept in its record: enough to see what it was, not
#: enough for one huge bad message to fill Redis.
RAW_LIMIT = 64 * 1024


class DeadJobError(ValueError):
    """A dead record that cannot be retried as it is (its raw body was truncated)."""


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
    #: The message exactly as it came off the queue, for messages that never became a job
    #: (None for jobs that ran). Retry puts it back unchanged.
    raw: str | None = field(default=None)
    raw_truncated: bool = False


def unrunnable(raw: bytes | str, reason: str, queue: str, headers: Any = None) -> DeadJob:
    """The dead record of a message that cannot run, keeping its body up to RAW_LIMIT bytes."""
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
    head = headers if isinstance(headers, dict) else {}
    job_id, task = head.get("id"), head.get("task")
    now = time.time()
    return DeadJob(
        id=job_id if isinstance(job_id, str) and job_id else f"unrunnable-{uuid.uuid4()}",
        task=task if isinstance(task, str) else "(not a job)",
        queue=queue if queue in QUEUES else DEFAULT,
        args=[],
        kwargs={},
        error=reason,
        traceback="",
        attempts=0,
        started_at=now,
        failed_at=now,
        raw=data[:RAW_LIMIT].decode("utf-8", "replace"),
        raw_truncated=len(data) > RAW_LIMIT,
    )


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
        """Queue the job again under the same id, with a fresh retry budget.

        An unrunnable message goes back exactly as it came (it may run now, e.g. after a deploy
        added its task); one whose body was truncated cannot, and raises DeadJobError.
        """
        job = self.get(job_id)
        if job is None:
            return False
        if job.raw is not None:
            if job.raw_truncated:
                raise DeadJobError(
                    f"{job_id}: its body was longer than {RAW_LIMIT} bytes and was truncated; "
                    "it cannot be retried, only purged"
                )
            message = job.raw
        else:
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
