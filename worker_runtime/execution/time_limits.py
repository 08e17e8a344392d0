"""Job time limits as Celery defines them: a job's own (`timelimit` header, then the task's
`time_limit`/`soft_time_limit`), else the worker's (`--time-limit`, `--soft-time-limit`).

The soft limit raises Celery's `SoftTimeLimitExceeded` inside `perform`, from a SIGALRM timer
armed around the call (prefork's pool did it with SIGUSR1 from its parent; a job slot runs the
job in its own main thread, where a timer signal lands). The hard limit is the supervisor's: it
kills the slot (supervisor.py), because nothing inside a process can stop code that never
returns to the interpreter. Must not record or retry anything.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

#: Start of the reason a hard-limit kill records (lost.py); execution.py reads it back to fail
#: the attempt with Celery's `TimeLimitExceeded` instead of a lost worker.
HARD_LIMIT_REASON = "time limit exceeded"


def hard_limit_reason(seconds: float) -> str:
    return f"{HARD_LIMIT_REASON}: still running after {seconds:g}s, its worker slot was killed"


def limits(task: Any) -> tuple[float, float]:
    """(hard, soft) seconds for the running request of `task`; 0 means none."""
    header = getattr(task.request, "timelimit", None) or (None, None)
    hard, soft = [*header, None, None][:2]
    conf = task.app.conf
    hard = hard or getattr(task, "time_limit", None) or conf.task_time_limit
    soft = soft or getattr(task, "soft_time_limit", None) or conf.task_soft_time_limit
    return float(hard or 0), float(soft or 0)


def _expired(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise SoftTimeLimitExceeded("soft time limit exceeded")


@contextmanager
def soft_limit(seconds: float) -> Iterator[None]:
    """Raise `SoftTimeLimitExceeded` in this (main) thread if the block outlives `seconds`."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
