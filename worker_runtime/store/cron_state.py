"""Cron schedules as Redis knows them, for the Cron page and `workerpool cron`: which schedules
exist, which are disabled, what each last enqueued and how that job ended.

Beat declares its schedules here when it starts (`declare`: the Flower pods and the CLI have
no worker classes loaded, so they read this hash). Disabling is a member of a set that the
cron dispatcher's fire script checks in the same atomic step that advances a schedule's
token (scheduling/cron_dispatch.py): durable, pool-wide, and a re-enabled schedule fires from
its next tick, never the ones that passed while it was off (sidekiq-cron's behaviour).

Owns these keys and `run_now`. Must not fire ticks (cron_dispatch.py does) nor read the clock.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis

from worker_runtime.core.cron import next_fire
from worker_runtime.core.keys import Keys, result_key
from worker_runtime.core.messages import build_message, new_job_id


class CronScheduleError(ValueError):
    """An action on a cron schedule that does not exist."""


@dataclass(frozen=True)
class Schedule:
    task: str
    expression: str
    timezone: str
    queue: str
    overlap: str


@dataclass(frozen=True)
class CronEntry:
    schedule: Schedule
    enabled: bool
    #: Epoch seconds of the next tick.
    next_run: float
    #: Epoch seconds of the newest tick fired (by any beat), or None if it never fired.
    last_tick: float | None
    last_job: str | None
    #: Celery state of `last_job` (SUCCESS, FAILURE, RETRY, PENDING, ...), or None.
    last_status: str | None


def declare(client: redis.Redis, keys: Keys, schedules: list[Schedule]) -> None:
    """Make `schedules` the pool's list (the newest beat to start wins)."""
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.cron_schedules)
        if schedules:
            pipe.hset(
                keys.cron_schedules,
                mapping={s.task: json.dumps(asdict(s), sort_keys=True) for s in schedules},
            )
        pipe.execute()


def schedule_of(client: redis.Redis, keys: Keys, task: str) -> Schedule:
    raw = client.hget(keys.cron_schedules, task)
    if raw is None:
        known = sorted(str(_text(k)) for k in client.hkeys(keys.cron_schedules))
        raise CronScheduleError(
            f"no cron schedule named {task!r} (known: {', '.join(known) or 'none'})"
        )
    return Schedule(**json.loads(raw))


def entries(client: redis.Redis, keys: Keys, now: datetime) -> list[CronEntry]:
    """Every declared schedule, by task name: three round trips in all."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.cron_schedules)
        pipe.smembers(keys.cron_disabled)
        pipe.hgetall(keys.cron_last_job)
        raw_schedules, disabled, last_jobs = pipe.execute()
    schedules = sorted(
        (Schedule(**json.loads(raw)) for raw in raw_schedules.values()), key=lambda s: s.task
    )
    if not schedules:
        return []
    jobs = [_text(last_jobs.get(s.task.encode())) for s in schedules]
    with client.pipeline(transaction=False) as pipe:
        for schedule, job in zip(schedules, jobs, strict=True):
            pipe.get(keys.cron_last(schedule.task))
            pipe.get(result_key(job or ""))  # no job: a key that never exists
        replies = pipe.execute()
    out = []
    for i, (schedule, job) in enumerate(zip(schedules, jobs, strict=True)):
        tick, meta = replies[2 * i], replies[2 * i + 1]
        out.append(
            CronEntry(
                schedule=schedule,
                enabled=schedule.task.encode() not in disabled,
                next_run=next_fire(
                    schedule.expression, now, ZoneInfo(schedule.timezone)
                ).timestamp(),
                last_tick=None if tick is None else float(tick),
                last_job=job,
                last_status=_status(meta) if job else None,
            )
        )
    return out


def set_enabled(client: redis.Redis, keys: Keys, task: str, enabled: bool) -> None:
    schedule_of(client, keys, task)
    if enabled:
        client.srem(keys.cron_disabled, task)
    else:
        client.sadd(keys.cron_disabled, task)


def run_now(client: redis.Redis, keys: Keys, task: str, now: float) -> str:
    """Enqueue one run of `task`'s schedule now, outside its ticks; return the job id."""
    schedule = schedule_of(client, keys, task)
    job_id = new_job_id()
    message = build_message(
        task_name=task, job_id=job_id, queue=schedule.queue, args=(), kwargs={}, enqueued_at=now
    )
    with client.pipeline(transaction=True) as pipe:
        pipe.lpush(schedule.queue, message)
        pipe.hset(keys.cron_last_job, task, job_id)
        pipe.execute()
    return job_id


def _text(raw: Any) -> str | None:
    return None if raw is None else str(raw.decode() if isinstance(raw, bytes) else raw)


def _status(meta: bytes | None) -> str:
    if meta is None:
        return "PENDING"
    try:
        return str(json.loads(meta)["status"])
    except (ValueError, KeyError, TypeError):
        return "?"
