"""What the tests of `workerpool up` share: the environment it must not inherit, and making sure
nothing it started outlives the test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import psutil

#: What `up` must not inherit from the test environment, so it starts from nothing.
CONFIGURED = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "WORKER_PACKAGES", "FLOWER_BASIC_AUTH")


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(procs: list[psutil.Process]) -> list[str]:
    """Those still running (not zombies), each as `pid command line`."""
    found = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return found


def leave_nothing(process: subprocess.Popen[bytes]) -> None:
    """Kill `process`, its group and every descendant it still has."""
    leftovers = descendants(process.pid)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for child in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
