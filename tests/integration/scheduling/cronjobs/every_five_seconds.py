"""Fires at seconds 0, 5, 10, ... with `cron_misfire = "run_once"`: the restart test kills
its beat right after a tick and restarts it within the same tick interval."""

from __future__ import annotations

from tests.integration.scheduling.cronjobs.recording import record_run
from worker_runtime import Worker


class EveryFiveSeconds(Worker):
    cron_schedule = "*/5 * * * * *"
    cron_misfire = "run_once"

    @classmethod
    def perform(cls) -> None:
        record_run("every_five_seconds")
