"""One `workerpool up` per folder, and what a hard-killed one left behind.

A running `up` holds an exclusive `flock` on `.workerpool/up.lock` (the kernel drops it when
the process dies, however it dies; children do not inherit it: Popen closes their
descriptors), so a second `up` in the same folder stops with one line instead of fighting the
first over the record, the port and the data folder.

The embedded Redis runs in its own session without a parent-death signal (it holds the jobs:
it must stop by SIGTERM, which flushes its append-only file, not die mid-write with its
parent), so an `up` killed with SIGKILL leaves it running. The next `up` finds its pid in the
record, checks that the process answering on the recorded port is that pid (Redis's own
`INFO server`), and stops it before starting its own on the same port, with the same data.

Must not start anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

from worker_runtime.local.record import STATE_FOLDER, StackRecord

LOCK_NAME = "up.lock"


class StackBusyError(RuntimeError):
    """Another `up` runs from this folder."""


class StackLock:
    """Held for the whole life of an `up`; raises StackBusyError if another holds it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / STATE_FOLDER / LOCK_NAME
        self._file: IO[str] | None = None

    def __enter__(self) -> StackLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StackBusyError(
                f"another `workerpool up` (pid {holder}) runs from this folder; stop it first, "
                "or run this one from another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None


def stop_orphan(record: StackRecord | None, timeout: float = 30.0) -> int | None:
    """Stop the embedded Redis a hard-killed `up` left running; return its pid, or None if
    there was none. Only a process that answers on the recorded port *and* reports the recorded
    pid is stopped: a reused pid or someone else's Redis is left alone."""
    if record is None or record.redis_pid is None or record.redis_port is None:
        return None
    client = redis.Redis(port=record.redis_port, socket_connect_timeout=1, socket_timeout=5)
    try:
        try:
            info = client.info("server")
        except redis.RedisError:
            return None  # nothing answers there: it is gone
        if int(info.get("process_id", -1)) != record.redis_pid:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.redis_pid, signal.SIGTERM)  # Redis flushes its file and exits
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.ping()
            except redis.ConnectionError:
                return record.redis_pid  # refused: it has exited and freed the port
            except redis.RedisError:
                pass  # busy flushing its file: still there
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.redis_pid, signal.SIGKILL)
        return record.redis_pid
    finally:
        client.close()
