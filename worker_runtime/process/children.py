"""The processes a worker's supervisor forks, and the few system calls it makes on them:
fork (after importing what every slot shares), reap without blocking, signal.

Must not decide anything: when to start, kill or replace a child is the supervisor's call.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
from dataclasses import dataclass

from worker_runtime.runtime import Runtime


@dataclass
class Child:
    """A forked process: a job slot, or the pod's duties (index -1)."""

    index: int
    pid: int | None = None
    started: float = 0.0
    next_start: float = 0.0
    failures: int = 0
    #: Why the supervisor killed it, recorded as its job's loss (None: it died by itself).
    killed_because: str | None = None
    last_exit: int | None = None


def slot_hostname(hostname: str | None, index: int) -> str:
    """Slot i's Celery node name: `name-i@host` (default `slot-i@%h`)."""
    name, _, host = (hostname or "slot@%h").partition("@")
    return f"{name}-{index + 1}@{host or '%h'}"


def fork() -> int:
    # Unflushed output would be written again by the child.
    sys.stdout.flush()
    sys.stderr.flush()
    return os.fork()


#: What every slot imports to run a Celery worker: imported once here, shared by the forks.
_SLOT_MODULES = (
    "celery.apps.worker",
    "celery.bin.celery",
    "celery.bin.worker",
    "celery.concurrency.solo",
    "celery.events",
    "celery.worker.autoscale",
    "celery.worker.components",
    "celery.worker.consumer",
    "celery.worker.control",
    "celery.worker.heartbeat",
    "celery.worker.pidbox",
    "celery.worker.strategy",
    "kombu.transport.redis",
    "worker_runtime.broker.intake",
    "worker_runtime.store.results",
)


def share_before_forking(rt: Runtime) -> None:
    """Import and build once what every child needs, so the forks share those pages."""
    for name in _SLOT_MODULES:
        importlib.import_module(name)
    rt.app.finalize()
    # Out of the collector's reach, so no collection in a slot writes to (and copies) pages it
    # shares with the supervisor.
    gc.freeze()


def exit_code(pid: int) -> int | None:
    """The child's exit code (-N: killed by signal N), or None while it runs."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return -signal.SIGKILL  # reaped elsewhere: gone without a status
    return None if done == 0 else os.waitstatus_to_exitcode(status)


def send(pid: int, signum: int) -> None:
    # Exited meanwhile: its status is collected next tick.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
