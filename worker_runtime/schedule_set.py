"""The schedule set: holding jobs until they are due, moving them onto their queues exactly
once, and reporting on it.

Delayed jobs, retries and `perform_at` wait in one Redis sorted set per queue (Sidekiq's
"scheduled set"), not as Celery ETA messages: ETA messages sit in worker memory and, on Redis,
are redelivered when the delay outlives the visibility timeout (celery#2599, kombu#337).

Any number of dispatchers may run (each worker and each beat runs one). The move is one Lua
script, atomic in Redis, so a job is taken by exactly one of them. This module is the only one
that writes or moves the set's keys (`Keys.schedule`, `Keys.payloads`): `schedule()` adds a
job, the Lua script and the dispatcher loop move due ones. It must not build messages or decide
delays (callers pass a finished message and a due time).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis

from worker_runtime.keys import Keys, result_key
from worker_runtime.messages import decode_message
from worker_runtime.queues import QUEUES

log = logging.getLogger(__name__)

#: KEYS: schedule zset, payload hash, queue list. ARGV: now (epoch), batch size.
#: Returns how many ids it took off the set. An id whose payload is missing is dropped (and
#: counted) rather than found again on every pass; nothing is pushed for it.
_MOVE_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local message = redis.call('HGET', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  if message then
    redis.call('LPUSH', KEYS[3], message)
  end
end
return #ids
"""

BATCH = 500

#: Celery state shown by `AsyncResult.status` while a job waits in the schedule set.
SCHEDULED = "SCHEDULED"


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


@dataclass(frozen=True)
class QueueSchedule:
    queue: str
    count: int
    next_due: float | None


class ScheduleSet:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._move = client.register_script(_MOVE_DUE)

    def move_due(self, now: float) -> int:
        """Move every job due at or before `now` onto its queue; return how many moved."""
        moved = 0
        for queue in QUEUES:
            while True:
                n = int(
                    self._move(
                        keys=[self._keys.schedule(queue), self._keys.payloads, queue],
                        args=[now, BATCH],
                    )
                )
                moved += n
                if n < BATCH:
                    break
        return moved

    def summary(self) -> list[QueueSchedule]:
        out = []
        for queue in QUEUES:
            key = self._keys.schedule(queue)
            first = self._client.zrange(key, 0, 0, withscores=True)
            out.append(
                QueueSchedule(
                    queue, int(self._client.zcard(key)), float(first[0][1]) if first else None
                )
            )
        return out

    def per_worker(self, limit: int = 100_000) -> dict[str, tuple[int, float]]:
        """Task name -> (count, earliest due) over the first `limit` jobs of each queue."""
        out: dict[str, tuple[int, float]] = {}
        for queue in QUEUES:
            entries = cast(
                list[tuple[bytes, float]],
                self._client.zrange(self._keys.schedule(queue), 0, limit - 1, withscores=True),
            )
            ids = [job_id for job_id, _ in entries]
            payloads = self._client.hmget(self._keys.payloads, ids) if ids else []
            for (_, due), raw in zip(entries, payloads, strict=True):
                if raw is None:
                    continue
                task = decode_message(raw)["task"]
                count, first = out.get(task, (0, float(due)))
                out[task] = (count + 1, min(first, float(due)))
        return out


class Dispatcher:
    """A daemon thread that moves due jobs every `interval` seconds until stopped."""

    def __init__(
        self,
        schedule_set: ScheduleSet,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._set = schedule_set
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workerpool-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def run_once(self) -> int:
        moved = self._set.move_due(self._clock())
        if moved:
            log.debug("dispatched %d scheduled job(s)", moved)
        return moved

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except redis.RedisError as exc:
                # Redis may restart under us; the jobs are safe in it, so retry next pass.
                log.warning("scheduled-job dispatch failed, retrying: %s", exc)
            self._stop.wait(self._interval)
