"""Test workers that record each run in a Redis list (`ran:<tag>`)."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from worker_runtime import Worker, current


def record(kind: str, **fields: Any) -> None:
    entry = {"kind": kind, "t": time.time(), "pid": os.getpid(), **fields}
    current().redis.rpush(f"ran:{kind}", json.dumps(entry))


class Echo(Worker):
    """Returns its input: the round trip test."""

    @classmethod
    def perform(cls, user_id: int, data: dict[str, Any]) -> dict[str, Any]:
        record("echo", user_id=user_id)
        return {"user_id": user_id, "data": data, "status": "completed"}


class Sleepy(Worker):
    """Sleeps, then records; queue chosen per subclass for the priority test."""

    queue = "low"

    @classmethod
    def perform(cls, tag: str, seconds: float = 0.0) -> str:
        record("sleepy", tag=tag, queue=cls.queue, started=time.time())
        time.sleep(seconds)
        return tag


class SleepyDefault(Sleepy):
    queue = "default"


class SleepyCritical(Sleepy):
    queue = "critical"


class Flaky(Worker):
    """Fails `fail_times` times (counted in Redis), then succeeds."""

    max_retries = 3
    retry_backoff = True
    retry_backoff_max = 4

    @classmethod
    def perform(cls, key: str, fail_times: int) -> str:
        attempt = int(current().redis.incr(f"attempts:{key}"))
        record("flaky", key=key, attempt=attempt)
        if attempt <= fail_times:
            raise RuntimeError(f"flaky failure {attempt}")
        return f"ok after {attempt}"


class AlwaysFails(Worker):
    max_retries = 2
    retry_backoff_max = 1

    @classmethod
    def perform(cls, key: str) -> None:
        record("fails", key=key)
        raise ValueError(f"boom {key}")


class Counted(Worker):
    """Records once per run: exactly-once tests count these."""

    @classmethod
    def perform(cls, n: int, seconds: float = 0.0) -> int:
        time.sleep(seconds)
        record("counted", n=n)
        return n


class KillsItsProcess(Worker):
    """Ends its own pool process mid-job, as the kernel's OOM killer or a segfault would."""

    max_retries = 2
    retry_backoff_max = 1

    @classmethod
    def perform(cls, key: str, how: str) -> None:
        record("kills", key=key)
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif how == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        os._exit(3)


class ReturnsASet(Worker):
    """Returns a value the JSON result backend cannot store."""

    max_retries = 0

    @classmethod
    def perform(cls, key: str) -> Any:
        record("returns_set", key=key)
        return {key}


class Overruns(Worker):
    """Runs for `seconds` (past the worker's time limits in the slot tests); one retry."""

    max_retries = 1
    retry_backoff_max = 1

    @classmethod
    def perform(cls, key: str, seconds: float) -> str:
        record("overruns", key=key)
        time.sleep(seconds)
        return key


class FailsOften(Worker):
    """Fails every time with growing delays: after a few failures its retry waits seconds, long
    enough for a page to show it (the job pages' browser tests)."""

    max_retries = 10
    retry_backoff = True

    @classmethod
    def perform(cls, key: str) -> None:
        record("fails-often", key=key)
        raise ConnectionError(f"smtp down for {key}")


class Storm(Worker):
    """Records each run; enough quick retries that kills alone cannot dead-set it."""

    max_retries = 10
    retry_backoff_max = 1

    @classmethod
    def perform(cls, n: int) -> int:
        record("storm", n=n)
        return n
