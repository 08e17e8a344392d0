"""A slow job (to delete its pod mid-run) and a cron job that fires every minute."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from worker_runtime import Logger, Worker


class SlowWorker(Worker):
    """Sleeps, so a test can kill the worker pod while the job runs (late acks redeliver it)."""

    queue = "default"
    max_retries = 3

    @classmethod
    def perform(cls, seconds: float, tag: str) -> dict[str, Any]:
        Logger.info(message=f"slow job {tag} started", tag=tag)
        time.sleep(seconds)
        Logger.info(message=f"slow job {tag} finished", tag=tag)
        return {"tag": tag, "finished_at": datetime.now(UTC).isoformat()}


class MinuteCronWorker(Worker):
    """The shortest cron schedule there is, so a test sees the beat pod fire within ~1 min."""

    queue = "default"
    cron_schedule = "* * * * *"

    @classmethod
    def perform(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        Logger.info(message="minute cron fired")
        return {"fired_at": datetime.now(UTC).isoformat()}
