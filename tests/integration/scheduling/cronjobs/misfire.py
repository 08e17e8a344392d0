"""The same sparse schedule under both misfire policies, side by side in one beat."""

from __future__ import annotations

from tests.integration.scheduling.cronjobs.recording import record_run
from worker_runtime import Worker

SCHEDULE = "*/5 * * * * *"


class MisfireSkip(Worker):
    cron_schedule = SCHEDULE
    cron_misfire = "skip"

    @classmethod
    def perform(cls) -> None:
        record_run("misfire_skip")


class MisfireRunOnce(Worker):
    cron_schedule = SCHEDULE
    cron_misfire = "run_once"

    @classmethod
    def perform(cls) -> None:
        record_run("misfire_run_once")
