"""The beat process: a Celery beat whose scheduler is our exactly-once cron and dispatcher.

`celery beat` keeps its service loop, signal handling and banner; this scheduler replaces the
entries, heap and shelve file (which double-fire when two beats run) with `CronDispatcher` and
the schedule-set `Dispatcher` pass. Must not decide cron times or hold job state in memory.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis
from celery import beat

from worker_runtime import runtime
from worker_runtime.execution.registry import WorkerRegistry
from worker_runtime.process.heartbeat import heartbeat_path, touch
from worker_runtime.scheduling.cron_dispatch import CronDispatcher
from worker_runtime.store.schedule_set import ScheduleSet

log = logging.getLogger(__name__)


#: Seconds between attempts while Redis cannot be reached (start-up or outage).
REDIS_RETRY = 2.0


class RedisScheduler(beat.Scheduler):  # type: ignore[misc]
    def setup_schedule(self) -> None:
        rt = runtime.current()
        self._settings = rt.settings
        self._redis = rt.redis
        self._keys = rt.keys
        self._schedule_set = ScheduleSet(rt.redis, rt.keys)
        # Built on the first tick that reaches Redis (its run_once catch-up reads Redis), so a
        # beat started before Redis waits for it instead of dying.
        self._cron: CronDispatcher | None = None
        self._started = datetime.now(UTC)
        self._unreachable_since: float | None = None
        self._heartbeat = heartbeat_path(rt.settings.state_dir, "beat")

    @property
    def schedule(self) -> dict[str, Any]:
        return {}

    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            interval = self._tick()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if self._unreachable_since is None:
                self._unreachable_since = time.time()
                log.warning(
                    "beat: Redis at %s is not reachable (%s); waiting for it, retrying every %.0fs",
                    _where(self._settings.broker_url),
                    exc,
                    REDIS_RETRY,
                )
            return REDIS_RETRY
        if self._unreachable_since is not None:
            log.info(
                "beat: Redis is reachable again after %.0fs",
                time.time() - self._unreachable_since,
            )
            self._unreachable_since = None
        touch(self._heartbeat)
        return interval

    def _tick(self) -> float:
        if self._cron is None:
            self._cron = CronDispatcher(
                self._redis,
                self._keys,
                WorkerRegistry.cron_workers(),
                self._settings.zone,
                start=self._started,
            )
        self._cron.run_due(datetime.now(UTC))
        self._schedule_set.move_due(time.time())
        interval = self._settings.dispatch_interval
        upcoming = self._cron.next_tick()
        if upcoming is not None:
            interval = min(interval, max(0.0, upcoming.timestamp() - time.time()))
        return interval

    def should_sync(self) -> bool:
        return False

    def sync(self) -> None:
        """Nothing to persist: cron tokens and scheduled jobs live in Redis."""


def _where(url: str) -> str:
    """The URL without credentials, for logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
