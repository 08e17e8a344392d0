"""Cron ticks to jobs, exactly once across any number of beats.

Mechanism: per schedule, Redis holds the epoch of the newest tick fired (`Keys.cron_last`), a
fencing token. A beat fires tick T with one Lua script that returns early unless T is newer
than the token, then advances the token and LPUSHes the job, atomically. Beats walk ticks in
time order, so a tick is fired by whichever beat gets there first and by no other; with two
beats, losing one loses no tick. Per-tick `SET NX` keys (sidekiq-cron) would work too, but need
a TTL that must outlive every stalled beat; the token never expires.

Owns the beat's view of cron: cursors, the misfire and overlap policies, the Lua scripts.
Must not compute cron times (cron.py) nor build messages itself beyond calling messages.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import redis

from worker_runtime.core.cron import next_fire, previous_fire
from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import build_message, new_job_id
from worker_runtime.jobs.worker import Worker
from worker_runtime.store import cron_state

log = logging.getLogger(__name__)

#: KEYS: token, queue list, running key, disabled set, last-job hash. ARGV: tick epoch,
#: message, job id, forbid(0/1), hold ttl, task name. Returns 1 fired, 0 already fired (by this
#: or another beat), -1 skipped: previous still running, -2 skipped: schedule disabled (the
#: token still advances, so re-enabling never fires the ticks that passed meanwhile).
_FIRE = """
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
if redis.call('SISMEMBER', KEYS[4], ARGV[6]) == 1 then return -2 end
if ARGV[4] == '1' then
  if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
  redis.call('SET', KEYS[3], ARGV[3], 'EX', tonumber(ARGV[5]))
end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[6], ARGV[3])
return 1
"""

#: KEYS: running key. ARGV: job id. Release only our own hold.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: A tick older than this when a beat first sees it is a misfire, not a late tick.
MISFIRE_GRACE = timedelta(seconds=60)


@dataclass(frozen=True)
class Fired:
    task_name: str
    tick: datetime
    outcome: int  # 1 fired, 0 fired elsewhere, -1 skipped (overlap), -2 skipped (disabled)
    job_id: str


def release_overlap(client: redis.Redis, keys: Keys, task_name: str, job_id: str) -> None:
    client.eval(_RELEASE, 1, keys.running(task_name), job_id)


class CronDispatcher:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        workers: Sequence[type[Worker]],
        zone: ZoneInfo,
        start: datetime,
    ) -> None:
        self._client = client
        self._keys = keys
        self._workers = [w for w in workers if w.cron_schedule is not None]
        self._zone = zone
        self._fire_script = client.register_script(_FIRE)
        # The Cron page and CLI read schedules from Redis: they have no worker classes loaded.
        cron_state.declare(
            client,
            keys,
            [
                cron_state.Schedule(w.task_name, w.cron_schedule, zone.key, w.queue, w.cron_overlap)
                for w in self._workers
                if w.cron_schedule is not None
            ],
        )
        # Ticks at or before `start` are history: the misfire policy decides about them.
        self._cursor = {w.task_name: start for w in self._workers}
        for worker in self._workers:
            if worker.cron_misfire == "run_once":
                self._catch_up(worker, start)

    def run_due(self, now: datetime) -> list[Fired]:
        """Fire every tick in (cursor, now] of every schedule; return what happened.

        A schedule that fails (its keys damaged in Redis, say) is logged with its name and
        retried on the next pass; it never keeps the others from firing. Losing Redis
        altogether is the caller's to handle, so connection errors propagate.
        """
        fired: list[Fired] = []
        for worker in self._workers:
            try:
                self._run_schedule(worker, now, fired)
            except redis.ConnectionError:
                raise
            except Exception:
                log.exception(
                    "%s: cron schedule %r failed; retrying next pass, other schedules go on",
                    worker.task_name,
                    worker.cron_schedule,
                )
        return fired

    def _run_schedule(self, worker: type[Worker], now: datetime, fired: list[Fired]) -> None:
        expr = worker.cron_schedule
        assert expr is not None
        tick = next_fire(expr, self._cursor[worker.task_name], self._zone)
        while tick <= now:
            if now - tick > MISFIRE_GRACE:
                log.warning("%s: missed cron tick %s (beat was stalled)", worker.task_name, tick)
            else:
                fired.append(self._fire(worker, tick))
            self._cursor[worker.task_name] = tick
            tick = next_fire(expr, tick, self._zone)

    def next_tick(self) -> datetime | None:
        ticks = [
            next_fire(w.cron_schedule, self._cursor[w.task_name], self._zone)
            for w in self._workers
            if w.cron_schedule is not None
        ]
        return min(ticks) if ticks else None

    def _catch_up(self, worker: type[Worker], start: datetime) -> None:
        """`run_once`: if the newest tick before start was never fired, fire it once now."""
        assert worker.cron_schedule is not None
        raw = self._client.get(self._keys.cron_last(worker.task_name))
        if raw is None:
            return  # never ran anywhere: nothing was missed
        missed = previous_fire(worker.cron_schedule, start, self._zone)
        if missed.timestamp() > float(raw):
            log.info("%s: running missed tick %s once (misfire=run_once)", worker.task_name, missed)
            self._fire(worker, missed)

    def _fire(self, worker: type[Worker], tick: datetime) -> Fired:
        job_id = new_job_id()
        message = build_message(
            task_name=worker.task_name,
            job_id=job_id,
            queue=worker.queue,
            args=(),
            kwargs={},
            enqueued_at=tick.timestamp(),
        )
        outcome = int(
            self._fire_script(
                keys=[
                    self._keys.cron_last(worker.task_name),
                    worker.queue,
                    self._keys.running(worker.task_name),
                    self._keys.cron_disabled,
                    self._keys.cron_last_job,
                ],
                args=[
                    int(tick.timestamp()),
                    message,
                    job_id,
                    "1" if worker.cron_overlap == "forbid" else "0",
                    worker.cron_overlap_timeout,
                    worker.task_name,
                ],
            )
        )
        if outcome == 1:
            log.info("%s: enqueued cron job %s for tick %s", worker.task_name, job_id, tick)
        elif outcome == -2:
            log.info("%s: tick %s not fired: the schedule is disabled", worker.task_name, tick)
        elif outcome == -1:
            log.warning(
                "%s: skipped tick %s, previous run still queued or running (overlap=forbid)",
                worker.task_name,
                tick,
            )
        return Fired(worker.task_name, tick.astimezone(UTC), outcome, job_id)
