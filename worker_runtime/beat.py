"""The beat process: a Celery beat whose scheduler is our exactly-once cron and dispatcher.

`celery beat` keeps its service loop, signal handling and banner; this scheduler replaces the
entries, heap and shelve file (which double-fire when two beats run) with `CronDispatcher` and
the schedule-set `Dispatcher` pass. Must not decide cron times or hold job state in memory.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from celery import beat

from worker_runtime import runtime
from worker_runtime.cron_dispatch import CronDispatcher
from worker_runtime.heartbeat import heartbeat_path, touch
from worker_runtime.registry import WorkerRegistry
from worker_runtime.schedule_set import ScheduleSet


class RedisScheduler(beat.Scheduler):  # type: ignore[misc]
    def setup_schedule(self) -> None:
        rt = runtime.current()
        self._settings = rt.settings
        self._schedule_set = ScheduleSet(rt.redis, rt.keys)
        self._cron = CronDispatcher(
            rt.redis,
            rt.keys,
            WorkerRegistry.cron_workers(),
            rt.settings.zone,
            start=datetime.now(UTC),
        )
        self._heartbeat = heartbeat_path(rt.settings.state_dir, "beat")

    @property
    def schedule(self) -> dict[str, Any]:
        return {}

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self._cron.run_due(datetime.now(UTC))
        self._schedule_set.move_due(time.time())
        touch(self._heartbeat)
        interval = self._settings.dispatch_interval
        upcoming = self._cron.next_tick()
        if upcoming is not None:
            interval = min(interval, max(0.0, upcoming.timestamp() - time.time()))
        return interval

    def should_sync(self) -> bool:
        return False

    def sync(self) -> None:
        """Nothing to persist: cron tokens and scheduled jobs live in Redis."""
