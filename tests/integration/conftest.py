"""Real Redis and real worker/beat/Flower processes for every integration test folder.

One `redis-server` per session; each test gets its own database (flushed), so tests cannot see
each other's queues. Processes run the real `workerpool` CLI in their own process groups and
are killed with their whole group at teardown, whatever the test did.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

import worker_runtime
from tests.controlplane.waiting import wait_for
from worker_runtime.core.settings import Settings
from worker_runtime.local.embedded_redis import EmbeddedRedis

JOBS = "tests.integration.runtime.jobs"
_databases = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(databases=512) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    db = next(_databases)
    url = redis_server.url(db)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for child processes and for the in-test runtime."""
    return {
        **os.environ,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "WORKER_PACKAGES": JOBS,
        "WORKERPOOL_STATE_DIR": str(tmp_path / "state"),
        "WORKERPOOL_CRON_SECONDS": "true",
        "WORKERPOOL_DISPATCH_INTERVAL": "0.1",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def rt(env: Mapping[str, str]) -> Iterator[worker_runtime.runtime.Runtime]:
    """The runtime of the test process itself (for perform_async and reading Redis)."""
    runtime = worker_runtime.configure(Settings.from_env(env))
    yield runtime
    runtime.close()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(repr=False)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signum)

    def wait_for_output(self, text: str, timeout: float = 30) -> None:
        wait_for(
            lambda: text in self.output() or self.popen.poll() is not None,
            timeout=timeout,
            message=f"{self.name} to print {text!r}",
        )
        if text not in self.output():
            raise AssertionError(f"{self.name} exited early:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 30) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.popen.wait()


Spawn = Callable[..., Proc]


@pytest.fixture
def spawn(tmp_path: Path, env: dict[str, str]) -> Iterator[Spawn]:
    """spawn("worker", "--concurrency=2") starts `workerpool worker ...` with the test env."""
    procs: list[Proc] = []
    counter = itertools.count()

    def start(
        *args: str, extra_env: Mapping[str, str] | None = None, ready: str | None = None
    ) -> Proc:
        name = f"{args[0]}-{next(counter)}"
        log = tmp_path / f"{name}.log"
        proc_env = {**env, **(extra_env or {})}
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "worker_runtime", *args],
                env=proc_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log, proc_env)
        procs.append(proc)
        if ready is None:
            # The worker's supervisor says so once every job slot has fetched from Redis.
            ready = {
                "worker": "slot(s) consuming",
                "beat": "beat: Starting",
                "flower": "Visit me at",
            }.get(args[0])
        if ready:
            proc.wait_for_output(ready)
        return proc

    yield start
    for proc in procs:
        proc.signal(signal.SIGKILL)
        proc.popen.wait()


def ran(client: redis.Redis, kind: str) -> list[dict[str, object]]:
    """Every recorded run of `kind`, in order."""
    import json

    return [json.loads(raw) for raw in client.lrange(f"ran:{kind}", 0, -1)]
