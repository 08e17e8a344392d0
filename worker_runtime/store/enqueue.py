"""Putting jobs onto their queue lists, to run as soon as a worker is free.

Owns the immediate write path. Must not validate arguments (the Worker does, before) nor touch
the schedule set: delayed jobs and retries go through `schedule_set.schedule`, the one module
that writes and moves that set. One round trip per call; `push_many` one per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis


def push(client: redis.Redis, queue: str, message: str) -> None:
    """Make a job runnable now. LPUSH + workers' BRPOP = FIFO, as kombu does."""
    client.lpush(queue, message)


def push_many(client: redis.Redis, queue: str, messages: Sequence[str], batch: int = 1000) -> None:
    """Make many jobs runnable with one LPUSH per `batch` messages, pipelined."""
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(messages), batch):
            pipe.lpush(queue, *messages[start : start + batch])
        pipe.execute()
