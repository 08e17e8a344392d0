"""The schedule set: holding jobs until they are due, moving them onto their queues exactly
once, and reporting on it.

Delayed jobs, retries and `perform_at` wait in one Redis sorted set per queue (Sidekiq's
"scheduled set"), not as Celery ETA messages: ETA messages sit in worker memory and, on Redis,
are redelivered when the delay outlives the visibility timeout (celery#2599, kombu#337).

Any number of dispatchers may run (each worker and each beat runs one:
scheduling/dispatcher.py). The move is one Lua script, atomic in Redis, so a job is taken by
exactly one of them. This module is the only one that writes or moves the set's keys
(`Keys.schedule`, `Keys.payloads`, and the browsing indexes of Scheduled and Retries):
`schedule()` adds a job, `ScheduleSet.dispatch` (the Lua script) moves due ones, and
`ScheduleSet.take` takes chosen ones out (run now, delete, kill: scheduled_jobs.py). It must not
build messages or decide delays (callers pass a finished message and a due time).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis

from worker_runtime.core.keys import Keys, result_key
from worker_runtime.core.messages import decode_message
from worker_runtime.core.queues import QUEUES

log = logging.getLogger(__name__)

#: KEYS: payload hash, the two browsing indexes (Keys.scheduled_index, Keys.retries_index),
#: then (schedule zset, queue list) per queue in priority order.
#: ARGV: now (epoch), batch size. Moves at most a batch of due jobs in all and returns
#: {how many ids it took off the sets, the earliest due time left in them (a string) or false}.
#: An id whose payload is missing is dropped (and counted) rather than found again on every
#: pass; nothing is pushed for it. One script for every queue: one round trip per pass.
_MOVE_DUE = """
local budget = tonumber(ARGV[2])
local moved = 0
local next_due = false
for i = 4, #KEYS, 2 do
  if moved < budget then
    local ids = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', ARGV[1], 'LIMIT', 0, budget - moved)
    if #ids > 0 then
      redis.call('ZREM', KEYS[2], unpack(ids))
      redis.call('ZREM', KEYS[3], unpack(ids))
    end
    for _, id in ipairs(ids) do
      local message = redis.call('HGET', KEYS[1], id)
      redis.call('ZREM', KEYS[i], id)
      redis.call('HDEL', KEYS[1], id)
      if message then
        redis.call('LPUSH', KEYS[i + 1], message)
      end
    end
    moved = moved + #ids
  end
  local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  if first[2] and ((not next_due) or tonumber(first[2]) < tonumber(next_due)) then
    next_due = first[2]
  end
end
return {moved, next_due}
"""

#: KEYS: payload hash, the index of one kind (scheduled or retries), then (schedule zset,
#: queue list) per queue. ARGV: "push" or "take", then job ids. Takes each id that is in the
#: index out of the schedule set, atomically with the dispatchers' move (so a job is either
#: moved by them or taken here, never both), and pushes it onto its queue ("push": run now)
#: or hands it back ("take": delete, kill). Returns {id, message, ...} of the ids taken.
_TAKE = """
local out = {}
for n = 2, #ARGV do
  local id = ARGV[n]
  if redis.call('ZREM', KEYS[2], id) == 1 then
    for i = 3, #KEYS, 2 do
      if redis.call('ZREM', KEYS[i], id) == 1 then
        local message = redis.call('HGET', KEYS[1], id)
        redis.call('HDEL', KEYS[1], id)
        if message then
          if ARGV[1] == 'push' then
            redis.call('LPUSH', KEYS[i + 1], message)
          end
          table.insert(out, id)
          table.insert(out, message)
        end
        break
      end
    end
  end
end
return out
"""

BATCH = 500
#: A job due sooner than this when scheduled wakes the sleeping dispatchers (pub/sub). Jobs due
#: later need no wake: every pass plans its next one by the earliest due job (`Pass.next_due`),
#: and no dispatcher sleeps longer than its interval (0.2 s by default; keep it below this).
WAKE_WITHIN = 1.0

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
    retry: bool = False,
) -> None:
    """Hold a job in Redis until `due`; a dispatcher then moves it onto `queue`.

    `retry` files it under the Retries (a failed attempt's next one), else under Scheduled.

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
        pipe.zadd(keys.retries_index if retry else keys.scheduled_index, {job_id: due_epoch})
        pipe.set(result_key(job_id), meta, ex=int(wait) + result_ttl)
        if wait < WAKE_WITHIN:
            # Same round trip; a dispatcher may have planned to sleep past this due time.
            pipe.publish(keys.schedule_wake, repr(due_epoch))
        pipe.execute()


@dataclass(frozen=True)
class Pass:
    """What one dispatcher pass did and saw."""

    moved: int
    #: Earliest due time (epoch) still in the schedule set after the pass, or None if empty.
    next_due: float | None


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
        self._take = client.register_script(_TAKE)

    def move_due(self, now: float) -> int:
        """Move every job due at or before `now` onto its queue; return how many moved."""
        return self.dispatch(now).moved

    def dispatch(self, now: float) -> Pass:
        """Move every job due at or before `now`; say how many, and when the next falls due."""
        keys = [self._keys.payloads, self._keys.scheduled_index, self._keys.retries_index]
        for queue in QUEUES:
            keys += [self._keys.schedule(queue), queue]
        moved = 0
        while True:
            n, next_due = self._move(keys=keys, args=[now, BATCH])
            moved += int(n)
            if int(n) < BATCH:
                return Pass(moved, None if next_due is None else float(next_due))

    def take(self, index: str, job_ids: list[str], *, push: bool) -> dict[str, str]:
        """Take the jobs of `job_ids` filed under `index` (Keys.scheduled_index or
        Keys.retries_index) out of the set: onto their queues now if `push`, else dropped.
        Returns id -> message of those taken; an id not (or no longer) waiting is left out.
        """
        keys = [self._keys.payloads, index]
        for queue in QUEUES:
            keys += [self._keys.schedule(queue), queue]
        taken: list[bytes] = self._take(keys=keys, args=["push" if push else "take", *job_ids])
        return {taken[i].decode(): taken[i + 1].decode() for i in range(0, len(taken), 2)}

    @property
    def wake_channel(self) -> str:
        return self._keys.schedule_wake

    def wake(self) -> None:
        """Wake every dispatcher listening on this Redis for an extra pass; never raises."""
        try:
            self._client.publish(self._keys.schedule_wake, "wake")
        except redis.RedisError as exc:
            log.debug("could not publish a schedule wake: %s", exc)

    def listen(self) -> redis.client.PubSub:
        """A subscription to the wake channel (see `schedule`)."""
        pubsub: redis.client.PubSub = self._client.pubsub(  # type: ignore[no-untyped-call]
            ignore_subscribe_messages=True
        )
        pubsub.subscribe(self._keys.schedule_wake)
        return pubsub

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
