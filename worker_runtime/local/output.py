"""The children's output, passed through `up` line by line, and when the stack is ready.

`up` reads each child's stdout and stderr (one pipe) in a thread and writes whole lines to its
own stdout, so lines of different processes never interleave mid-line, and it learns from what
they say that they are ready: the worker once every job slot has fetched from Redis
(process/supervisor.py logs "all N slot(s) consuming"), beat once it starts its loop
(Celery's "beat: Starting..."), Flower once it listens ("Visit me at"). `up` prints its own
"ready" lines after those, so the address and login are the last thing on the screen, not lost
above the start-up logs. Honcho (a Procfile runner) does the same passing-through; it was
considered, but it would replace `up`'s ordered shutdown rather than serve it.

Must not decide anything about the processes: it reads, writes and reports.
"""

from __future__ import annotations

import sys
import threading
from typing import IO

#: What each child says once it is ready (a substring of one of its lines, text or JSON logs).
READY_WHEN = {
    "worker": "slot(s) consuming",
    "beat": "beat: Starting",
    "flower": "Visit me at",
}


class Relay:
    """Copies children's output to `out`; `ready(name)` once that child said it is ready."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out or sys.stdout
        self._lock = threading.Lock()
        self._ready = {name: threading.Event() for name in READY_WHEN}
        self._threads: list[threading.Thread] = []

    def ready(self, *names: str) -> bool:
        return all(self._ready[name].is_set() for name in names)

    def follow(self, name: str, stream: IO[bytes]) -> None:
        thread = threading.Thread(
            target=self._copy, args=(name, stream), name=f"relay-{name}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def say(self, text: str) -> None:
        """A line of `up`'s own, never in the middle of a child's."""
        with self._lock:
            self._write(text + "\n")

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the children's last lines (their pipes close when they exit)."""
        for thread in self._threads:
            thread.join(timeout)

    def _copy(self, name: str, stream: IO[bytes]) -> None:
        marker = READY_WHEN.get(name)
        ready = self._ready.get(name)
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace")
                with self._lock:
                    self._write(line)
                if ready is not None and marker is not None and marker in line:
                    ready.set()

    def _write(self, text: str) -> None:
        try:
            self._out.write(text)
            self._out.flush()
        except (OSError, ValueError):
            # Our stdout is gone (a closed pipe): keep draining the children's pipes anyway,
            # or a child blocks on a full one.
            pass
