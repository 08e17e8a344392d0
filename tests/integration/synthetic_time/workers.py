"""Worker classes for the synthetic-time tests. Nothing discovers this module: the tests hand
the classes to the dispatcher or to `make_task` themselves."""

from __future__ import annotations

from worker_runtime.jobs.worker import Worker


class EveryMinute(Worker):
    cron_schedule = "* * * * *"

    @classmethod
    def perform(cls) -> None:
        """Cron jobs here are only enqueued, never run."""


class EveryMinuteRunOnce(EveryMinute):
    cron_misfire = "run_once"


class EveryMinuteForbid(EveryMinute):
    cron_overlap = "forbid"
    cron_overlap_timeout = 600


class Hourly(EveryMinute):
    cron_schedule = "0 * * * *"


class NightlyAtHalfPastTwo(EveryMinute):
    """02:30 does not exist on the night clocks spring forward."""

    cron_schedule = "30 2 * * *"


class NightlyAtHalfPastOne(EveryMinute):
    """01:30 happens twice on the night clocks fall back."""

    cron_schedule = "30 1 * * *"


class Fails(Worker):
    """Always raises; two retries one second apart, then the dead set."""

    max_retries = 2
    retry_backoff = False

    @classmethod
    def perform(cls, n: int) -> None:
        raise ValueError(f"boom {n}")


class FailsWithBackoff(Fails):
    retry_backoff = True
    retry_backoff_max = 30


class Succeeds(Worker):
    @classmethod
    def perform(cls, n: int) -> int:
        return n


class ForbidCronJob(Worker):
    """A forbid-overlap cron worker that runs: its hold must be released when it ends."""

    cron_schedule = "* * * * *"
    cron_overlap = "forbid"
    max_retries = 1
    retry_backoff = False

    @classmethod
    def perform(cls, fail: bool = False) -> str:
        if fail:
            raise RuntimeError("cron job failed")
        return "done"


class Urgent(Succeeds):
    queue = "critical"


class Eventually(Succeeds):
    queue = "low"
