"""Every second, but only during the current and the next hour of New York wall-clock time.

A beat that ignored WORKERPOOL_TIMEZONE (read the hours as UTC, 4-5 hours off) would never
fire it, so the test proves the zone is applied, not only that seconds tick.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tests.integration.scheduling.cronjobs.recording import record_run
from worker_runtime import Worker

ZONE = "America/New_York"
_hour = datetime.now(ZoneInfo(ZONE)).hour
SCHEDULE = f"* * {_hour},{(_hour + 1) % 24} * * *"


class NewYorkHours(Worker):
    cron_schedule = SCHEDULE

    @classmethod
    def perform(cls) -> None:
        record_run("new_york")
