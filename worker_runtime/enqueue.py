"""Putting jobs into Redis: now (onto the queue list) or later (into the schedule set).

Owns the write path of every job. Must not validate arguments (the Worker does, before) nor
move due jobs (the dispatcher does). One round trip per call; `push_many` one per batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import redis

from worker_runtime.keys import Keys, result_key

#: Celery state shown by `AsyncResult.status` while a job waits in the schedule set.
SCHEDULED = "SCHEDULED"


def push(client: redis.Redis, queue: str, message: str) -> None:
    """Make a job runnable now. LPUSH + workers' BRPOP = FIFO, as kombu does."""
    client.lpush(queue, message)


def push_many(client: redis.Redis, queue: str, messages: Sequence[str], batch: int = 1000) -> None:
    """Make many jobs runnable with one LPUSH per `batch` messages, pipelined."""
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(messages), batch):
            pipe.lpush(queue, *messages[start : start + batch])
        pipe.execute()


def schedule(
    client: redis.Redis,
    keys: Keys,
    *,
    queue: str,
    job_id: str,
    message: str,
    due: datetime,
    result_ttl: int,
) -> None:
    """Hold a job in Redis until `due`; a dispatcher then moves it onto `queue`.

    The payload goes in before the id enters the sorted set (MULTI/EXEC makes both visible
    together anyway) so a dispatcher never sees an id without its message. The result key gets
    a SCHEDULED state so `AsyncResult(job_id).status` is meaningful before the job runs.
    """
    due_epoch = due.timestamp()
    wait = max(0.0, due_epoch - datetime.now(UTC).timestamp())
    meta = json.dumps(
        {
            "status": SCHEDULED,
            "result": {"due": due.astimezone(UTC).isoformat()},
            "traceback": None,
            "children": [],
            "date_done": None,
            "task_id": job_id,
        }
    )
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(keys.payloads, job_id, message)
        pipe.zadd(keys.schedule(queue), {job_id: due_epoch})
        pipe.set(result_key(job_id), meta, ex=int(wait) + result_ttl)
        pipe.execute()
