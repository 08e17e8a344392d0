"""A job slower than its schedule's tick interval, under both overlap policies."""

from __future__ import annotations

from tests.integration.scheduling.cronjobs.recording import record_run
from worker_runtime import Worker

SCHEDULE = "* * * * * *"
#: Longer than the one-second tick interval, so each run spans the next tick.
RUN_SECONDS = 1.5


class SlowForbid(Worker):
    cron_schedule = SCHEDULE
    cron_overlap = "forbid"

    @classmethod
    def perform(cls) -> None:
        record_run("slow_forbid", seconds=RUN_SECONDS)


class SlowAllow(Worker):
    cron_schedule = SCHEDULE
    cron_overlap = "allow"

    @classmethod
    def perform(cls) -> None:
        record_run("slow_allow", seconds=RUN_SECONDS)
