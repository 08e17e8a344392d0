"""The dead-job store: jobs that failed their last retry, and messages that cannot run, kept in
Redis for a person to act on.

Owns the record format and list/show/retry/delete/purge (the CLI and the Dead page call the
same methods). Jobs reach it from `execution.py` after their final
attempt (an exception, a lost worker process, a result JSON cannot carry); messages that are
not runnable jobs (not JSON, not an envelope, an unknown task) reach it from `intake.py` with
their raw body, so nothing is dropped silently. Bounded like Sidekiq's dead set: beyond
`max_jobs` the oldest records go. Must not run jobs or decide retries.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import build_message
from worker_runtime.core.queues import DEFAULT, QUEUES
from worker_runtime.store.browse import UnknownJobError, Window, read_window
from worker_runtime.store.history import forget

#: Bytes of an unrunnable message's body kept in its record: enough to see what it was, not
#: enough for one huge bad message to fill Redis.
RAW_LIMIT = 64 * 1024


#: KEYS: dead zset, dead records hash, queue list. ARGV: job id, message. Requeues the message
#: only if this call took the id off the dead set.
_REQUEUE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
return 1
"""


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
        self._requeue = client.register_script(_REQUEUE)

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

    def window(
        self,
        offset: int = 0,
        limit: int = 50,
        *,
        match: Callable[[DeadJob], bool] | None = None,
    ) -> Window[DeadJob]:
        """Most recent first, one window of the set (see browse.read_window)."""
        return read_window(
            self._client,
            self._keys.dead,
            self._load,
            offset=offset,
            limit=limit,
            match=match,
            newest_first=True,
        )

    def show(self, job_id: str) -> DeadJob:
        job = self.get(job_id)
        if job is None:
            raise UnknownJobError(f"{job_id}: not in the dead set")
        return job

    def _load(self, entries: Sequence[tuple[str, float]]) -> Sequence[DeadJob | None]:
        ids = [job_id for job_id, _ in entries]
        raws = self._client.hmget(self._keys.dead_records, ids) if ids else []
        return [None if raw is None else DeadJob(**json.loads(raw)) for raw in raws]

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
        # Off the dead set and onto the queue in one step: of two retries of the same job
        # (two clicks, two people) only one pushes it, and a failure cannot lose it between.
        return bool(
            self._requeue(
                keys=[self._keys.dead, self._keys.dead_records, job.queue], args=[job_id, message]
            )
        )

    def retry_all(self) -> int:
        """Retry every dead job, oldest first, a chunk at a time; unretryable ones stay."""
        done = 0
        offset = 0
        while chunk := self.window(offset, 500).items:
            for job in reversed(chunk):
                try:
                    done += self.retry(job.id)
                except DeadJobError:
                    offset += 1
        return done

    def delete(self, job_ids: Sequence[str]) -> int:
        """Delete the named records; unknown ids raise after the others went."""
        missing = [job_id for job_id in job_ids if not self._remove(job_id)]
        if missing:
            raise UnknownJobError(f"not in the dead set: {', '.join(missing)}")
        return len(job_ids)

    def purge(self, job_id: str | None = None) -> int:
        if job_id is not None:
            return self._remove(job_id)
        # Histories go by chunks of ids (they also expire on their own); then the set.
        n = 0
        while ids := cast(list[bytes], self._client.zrange(self._keys.dead, 0, 999)):
            names = [raw.decode() for raw in ids]
            forget(self._client, self._keys, names)
            with self._client.pipeline(transaction=True) as pipe:
                pipe.zrem(self._keys.dead, *names)
                pipe.hdel(self._keys.dead_records, *names)
                n += int(pipe.execute()[0])
        return n

    def _remove(self, job_id: str) -> int:
        with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys.dead, job_id)
            pipe.hdel(self._keys.dead_records, job_id)
            pipe.delete(self._keys.history(job_id))
            removed, _, _ = pipe.execute()
        return int(removed)
