"""Every second: the schedule the Cron controls test disables, enables and runs now."""

from __future__ import annotations

from tests.integration.scheduling.cronjobs.recording import record_run
from worker_runtime import Worker

SCHEDULE = "* * * * * *"


class Switchable(Worker):
    cron_schedule = SCHEDULE

    @classmethod
    def perform(cls) -> None:
        record_run("switchable")
