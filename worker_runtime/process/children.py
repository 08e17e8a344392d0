"""The processes a worker's supervisor forks, and the few system calls it makes on them:
fork (after importing what every slot shares), reap without blocking, signal a child or its
whole process group, and the Linux-only `prctl` calls (no-ops elsewhere, e.g. macOS laptops).

Every child runs in its own session (slot.forked), so its process group holds the child and
whatever its jobs start (`subprocess.Popen` without a new session): `kill_group` ends them all.
The supervisor is a child subreaper on Linux (and PID 1 in the image), so orphans of a killed
slot become its children; `reap_orphans` collects them. Must not decide anything: when to start,
kill or replace a child is the supervisor's call.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Collection
from dataclasses import dataclass

from worker_runtime.runtime import Runtime

log = logging.getLogger(__name__)

# <linux/prctl.h>
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


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


def kill_group(pid: int, signum: int = signal.SIGKILL) -> None:
    """Signal the process group led by child `pid`: the child and what its job started.

    The child itself is signalled too: just forked, it may not have made its own session yet.
    """
    send(pid, signum)
    kill_leftovers(pid, signum)


def kill_leftovers(pid: int, signum: int = signal.SIGKILL) -> None:
    """Signal what is left of the group of child `pid`, which has exited and been reaped (so
    `pid` itself is never signalled: the number may be reused)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def reap_orphans(tracked: Collection[int]) -> int:
    """Reap exited children the supervisor did not fork (a killed job's own processes, handed
    to it as subreaper or PID 1), so none stays a zombie; returns how many.

    Peeks first (WNOWAIT): a tracked child's status belongs to whoever forked it
    (`exit_code`), and stays for it to collect next tick.
    """
    reaped = 0
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped
        if found is None or found.si_pid in tracked:
            return reaped
        with contextlib.suppress(ChildProcessError):
            os.waitpid(found.si_pid, 0)  # exited already: does not block
        reaped += 1


def _prctl(option: int, value: int) -> bool:
    """prctl(2) on Linux; False elsewhere (macOS has no prctl) or when it fails."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, value, 0, 0, 0)) == 0


def die_with_parent(signum: int = signal.SIGKILL) -> bool:
    """Have the kernel send `signum` to this process when its parent dies (Linux only)."""
    return _prctl(_PR_SET_PDEATHSIG, signum)


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants, as PID 1 would (Linux only)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)
