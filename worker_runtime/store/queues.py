"""The job queues as a person sees them: depth, latency, rates; browse, delete one, clear.

A queue is kombu's Redis list (LPUSH by producers, BRPOP from the right by slots), so the
oldest job is the last element. Latency is the age of that job, from the header our messages
carry (`messages.ENQUEUED_AT`); a message Celery built itself has none and shows no latency.
Rates come from the minute timelines of job_stats.py.

Owns these reads and the two removals. Must not move jobs between structures (schedule_set.py
and dead.py do) nor read the clock: callers pass `now`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from worker_runtime.core.messages import ENQUEUED_AT, decode_message
from worker_runtime.core.queues import QUEUES, check_queue
from worker_runtime.store import job_stats

#: Minutes the per-minute rates average over.
RATE_MINUTES = 5
#: Elements read per round trip while looking for one job to delete.
_SCAN_CHUNK = 1000


class QueueError(ValueError):
    """A queue action that cannot be done: the message names the queue or job."""


@dataclass(frozen=True)
class QueueInfo:
    name: str
    depth: int
    #: Seconds the oldest job has waited, or None (empty, or a message without the header).
    latency: float | None
    processed_per_minute: float
    failed_per_minute: float


@dataclass(frozen=True)
class QueuedJob:
    #: 0 is the next job a slot takes.
    position: int
    id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    retries: int
    enqueued_at: float | None


def _enqueued_at(raw: bytes | str) -> float | None:
    try:
        value = json.loads(raw)["headers"].get(ENQUEUED_AT)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def infos(client: redis.Redis, now: float) -> list[QueueInfo]:
    """Every queue, in priority order: two round trips whatever the depths."""
    with client.pipeline(transaction=False) as pipe:
        for queue in QUEUES:
            pipe.llen(queue)
            pipe.lindex(queue, -1)
        for minute in range(RATE_MINUTES):  # the current minute and the ones before
            pipe.hgetall(job_stats.minute_key(now - 60 * minute))
        replies = pipe.execute()
    minutes: list[dict[bytes, bytes]] = replies[2 * len(QUEUES) :]
    out = []
    for i, queue in enumerate(QUEUES):
        depth, oldest = int(replies[2 * i]), replies[2 * i + 1]
        enqueued = None if oldest is None else _enqueued_at(oldest)

        def rate(outcome: str, queue: str = queue) -> float:
            field = f"{queue}\t{outcome}".encode()
            return sum(int(m.get(field, 0)) for m in minutes) / RATE_MINUTES

        out.append(
            QueueInfo(
                queue,
                depth,
                None if enqueued is None else max(0.0, now - enqueued),
                rate("processed"),
                rate("failed"),
            )
        )
    return out


def browse(client: redis.Redis, queue: str, start: int = 0, count: int = 25) -> list[QueuedJob]:
    """Jobs `start` .. `start + count - 1` of `queue`, next to run first."""
    check_queue(queue, "queue")
    if count <= 0 or start < 0:
        return []
    # Oldest last in the list: position p is index -(p + 1).
    raws = client.lrange(queue, -(start + count), -(start + 1))
    jobs = []
    for offset, raw in enumerate(reversed(raws)):
        try:
            job = decode_message(raw)
        except (ValueError, KeyError, TypeError, IndexError):
            job = {"id": "?", "task": "(not a job message)", "args": [], "kwargs": {}}
            job["retries"] = 0
        jobs.append(
            QueuedJob(
                start + offset,
                str(job["id"]),
                str(job["task"]),
                list(job["args"]),
                dict(job["kwargs"]),
                int(job["retries"] or 0),
                _enqueued_at(raw),
            )
        )
    return jobs


def delete(client: redis.Redis, queue: str, job_id: str, near: int | None = None) -> None:
    """Remove job `job_id` from `queue` before a slot takes it; QueueError if it is not there.

    `near` is where a page showed the job (its position): that stretch of the list is read
    first, since slots only move jobs towards the front. Otherwise the list is read in chunks
    from the front (no Lua script holds Redis for a long scan). The message is removed by
    value with LREM, which removes nothing if a slot took it meanwhile.
    """
    check_queue(queue, "queue")
    needle = f'"id": "{job_id}"'.encode()
    length = int(client.llen(queue))
    # Ranges in list indexes (front = the end of the list, as slots pop from the right).
    spans = [(max(0, end - _SCAN_CHUNK), end - 1) for end in range(length, 0, -_SCAN_CHUNK)]
    if near is not None and 0 <= near < length:
        at = length - 1 - near
        spans.insert(0, (max(0, at - _SCAN_CHUNK // 2), min(length - 1, at + _SCAN_CHUNK // 2)))
    for start, stop in spans:
        for raw in client.lrange(queue, start, stop):
            found = needle in raw and decode_message(raw)["id"] == job_id
            if found and int(client.lrem(queue, 1, raw)):  # type: ignore[arg-type]
                return
    raise QueueError(f"job {job_id!r} is not waiting in queue {queue!r}")


def clear(client: redis.Redis, queue: str) -> int:
    """Delete every job waiting in `queue`; return how many there were."""
    check_queue(queue, "queue")
    with client.pipeline(transaction=True) as pipe:
        pipe.llen(queue)
        pipe.delete(queue)
        length, _ = pipe.execute()
    return int(length)
