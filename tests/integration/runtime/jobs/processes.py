"""Test workers that do what jobs do to their process: start children, change signal handling,
call `sys.exit` (tests/integration/runtime/test_process_hygiene.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.integration.runtime.jobs.recording import record
from worker_runtime import Worker


class StartsChildren(Worker):
    """Starts `count` long `sleep` processes (no new session, as most code does), then runs
    past any time limit."""

    max_retries = 0

    @classmethod
    def perform(cls, key: str, count: int) -> None:
        children = [subprocess.Popen(["sleep", "300"]) for _ in range(count)]
        record("starts_children", key=key, children=[child.pid for child in children])
        time.sleep(300)


class IgnoresSigterm(Worker):
    """Sets SIGTERM to SIG_IGN, as some libraries do, then works for `seconds`."""

    @classmethod
    def perform(cls, key: str, seconds: float) -> str:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        record("ignores_sigterm", key=key)
        time.sleep(seconds)
        return key


class CallsExit(Worker):
    """Calls sys.exit(code) from perform."""

    max_retries = 1
    retry_backoff_max = 1

    @classmethod
    def perform(cls, key: str, code: int) -> None:
        record("calls_exit", key=key)
        sys.exit(code)
