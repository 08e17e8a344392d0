"""A slow job (to delete its pod mid-run), a job held until the test releases it (to keep a
worker busy on purpose, counting its runs in Redis), a job that dies at once (for the Dead
page) and a cron job that fires every minute."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from worker_runtime import Logger, Worker, runtime


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


class HeldWorker(Worker):
    """Runs until the key `release` exists in the pool's Redis, or for `seconds` at most.

    Counts each start and finish in `e2e:started:TAG` and `e2e:finished:TAG` (INCR): the test
    reads them to tell a job run exactly once from one redelivered or lost; the finish time
    (Unix seconds, in `e2e:finished_at:TAG`) dates the end of a backlog. A test that keeps
    a worker busy releases it when it is done looking, instead of guessing a duration.
    """

    queue = "default"

    @classmethod
    def perform(cls, tag: str, seconds: float, release: str = "") -> dict[str, Any]:
        store = runtime.current().redis
        store.incr(f"e2e:started:{tag}")
        Logger.info(message=f"held job {tag} started", tag=tag)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (release and store.exists(release)):
            time.sleep(0.1)  # a poll of the test's release key, not a wait for an outcome
        store.incr(f"e2e:finished:{tag}")
        store.set(f"e2e:finished_at:{tag}", repr(time.time()))  # when a queue really drained
        return {"tag": tag, "finished_at": datetime.now(UTC).isoformat()}


class DoomedWorker(Worker):
    """Fails at once with no retries: a dead job whose traceback the Dead page must show."""

    queue = "default"
    max_retries = 0

    @classmethod
    def perform(cls, tag: str) -> None:
        raise RuntimeError(f"doomed job {tag} failed on purpose")


class MinuteCronWorker(Worker):
    """The shortest cron schedule there is, so a test sees the beat pod fire within ~1 min."""

    queue = "default"
    cron_schedule = "* * * * *"

    @classmethod
    def perform(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        Logger.info(message="minute cron fired")
        return {"fired_at": datetime.now(UTC).isoformat()}
