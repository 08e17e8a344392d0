"""Fires every second; records its job id and start time."""

from __future__ import annotations

from tests.integration.scheduling.cronjobs.recording import record_run
from worker_runtime import Worker


class EverySecond(Worker):
    cron_schedule = "* * * * * *"

    @classmethod
    def perform(cls) -> None:
        record_run("every_second")
