"""Redis and worker processes for the benchmarks: start, wait until consuming, measure, stop.

Owns everything with a process id: the embedded `redis-server`, this project's worker
(`python -m worker_runtime worker`) and the plain Celery worker
(`python -m celery -A tests.benchmarks.plain_celery worker`), both as real subprocesses in
their own process groups, with logs in a temporary folder (their tails are printed when one
dies). Also the helpers both sides share so they are measured the same way: readiness, RSS,
queue filling and "everything acked" polling. Must not decide what a scenario measures.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
import redis

import worker_runtime
from tests.benchmarks import plain_celery
from tests.controlplane.waiting import wait_for
from worker_runtime.core.messages import build_message, new_job_id
from worker_runtime.core.settings import Settings
from worker_runtime.local.embedded_redis import EmbeddedRedis

REPO = Path(__file__).resolve().parents[2]
#: Databases of the one redis-server: each system gets its own, flushed before every run.
OURS_DB = 1
CELERY_DB = 2
#: kombu's Redis transport keeps delivered-but-unacked messages in this hash.
UNACKED = "unacked"
#: Log level of both workers: INFO is our CLI's default and what Celery's docs run with.
LOGLEVEL = os.environ.get("BENCH_LOGLEVEL", "INFO")
OURS = "workerpool"
CELERY = "celery"


def _base_env() -> dict[str, str]:
    """This process's environment minus anything that configures either system.

    A WORKERPOOL_DISPATCH_INTERVAL or CELERY_BROKER_URL left in a shell would otherwise
    silently change "this project's defaults" or point a worker elsewhere.
    """
    prefixes = ("WORKERPOOL_", "CELERY_", "BENCH_CELERY_", "WORKER_PACKAGES")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


class BenchmarkError(RuntimeError):
    """A process or Redis did not behave; the message carries the log tail."""


@dataclass
class WorkerProcess:
    """One worker (main process plus pool children) started by the harness."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    db: int
    started: float = field(default_factory=time.monotonic)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise BenchmarkError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")

    def wait_consuming(self, client: redis.Redis, timeout: float = 60.0) -> float:
        """Wait until the worker waits on its queues; return seconds since start.

        Log lines differ between the two CLIs and depend on the log level; a client of this
        worker's database parked in BRPOP (plain Celery) or tracking its queues for the
        reliable fetch (ours, broker/fetch.py: flag "t") means the same thing: it is consuming.
        """

        def consuming() -> bool:
            self.check_alive()
            return any(
                (c.get("cmd") == "brpop" or "t" in str(c.get("flags", "")))
                and int(c.get("db", -1)) == self.db
                for c in client.client_list()
            )

        wait_for(consuming, timeout=timeout, interval=0.05, message=f"{self.name} to consume")
        return time.monotonic() - self.started

    def cpu_seconds(self) -> float:
        """User + system CPU time of the main process and every live pool child.

        Less sensitive to a busy machine than wall time: what each job costs the worker.
        """
        main = psutil.Process(self.popen.pid)
        total = 0.0
        for proc in [main, *main.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> int:
        """Resident memory of the main process and every pool child, in bytes."""
        main = psutil.Process(self.popen.pid)
        total = 0
        for proc in [main, *main.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the group (warm shutdown), then SIGKILL if it lingers."""
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        self.popen.wait()

    def _signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)


class Bench:
    """One redis-server, a runtime for each system in this process, and the started workers.

    Use as a context manager: leaving it kills every worker it started and stops Redis.
    """

    def __init__(self, keep_logs: bool = False) -> None:
        self.redis_server = EmbeddedRedis(databases=8)
        # mkdtemp, not TemporaryDirectory: the latter deletes itself at exit even when kept.
        self.log_dir = Path(tempfile.mkdtemp(prefix="workerpool-bench-"))
        self.keep_logs = keep_logs
        self._workers: list[WorkerProcess] = []
        self._counter = itertools.count()
        self._clients: dict[int, redis.Redis] = {}
        self.ours: redis.Redis
        self.celery: redis.Redis

    def __enter__(self) -> Bench:
        self.redis_server.start()
        self.ours = self.db_client(OURS_DB)
        self.celery = self.db_client(CELERY_DB)
        # Producers in this process: our runtime (perform_*) and the plain Celery app
        # (apply_async). Configured before either connects.
        worker_runtime.configure(Settings.from_env(self.ours_env()))
        plain_celery.configure(self.url(CELERY_DB), plain_celery.GUARANTEES)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for worker in self._workers:
            worker.kill()
        worker_runtime.current().close()
        plain_celery.app.close()
        for client in self._clients.values():
            client.close()
        self.redis_server.stop()
        if self.keep_logs:
            print(f"worker logs kept in {self.log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def url(self, db: int) -> str:
        return self.redis_server.url(db)

    def flush(self) -> None:
        """Empty every database in use: each measured run starts from nothing."""
        for client in self._clients.values():
            client.flushdb()

    def client(self, system: str) -> redis.Redis:
        return self.ours if system == OURS else self.celery

    def db_client(self, db: int) -> redis.Redis:
        """A client of database `db` (closed with the Bench)."""
        if db not in self._clients:
            self._clients[db] = redis.Redis.from_url(self.url(db))
        return self._clients[db]

    def ours_env(self) -> dict[str, str]:
        url = self.url(OURS_DB)
        return {
            **_base_env(),
            "CELERY_BROKER_URL": url,
            "CELERY_RESULT_BACKEND": url,
            "WORKER_PACKAGES": "tests.benchmarks.jobs",
            "WORKERPOOL_STATE_DIR": str(self.log_dir / "state"),
        }

    def start_ours(self, concurrency: int = 2) -> WorkerProcess:
        """This project's worker exactly as users run it, with its defaults."""
        return self._spawn(
            OURS,
            [sys.executable, "-m", "worker_runtime", "worker", f"--concurrency={concurrency}"],
            self.ours_env(),
            OURS_DB,
            f"--loglevel={LOGLEVEL}",
        )

    def start_celery(
        self, profile: str, concurrency: int = 2, db: int = CELERY_DB
    ) -> WorkerProcess:
        """Plain Celery: all but `defaults` add -E (events), the rest comes from the profile.

        `db` other than CELERY_DB lets two plain workers run side by side without sharing
        queues; only CELERY_DB is reachable through this process's `apply_async`.
        """
        env = {
            **_base_env(),
            "BENCH_CELERY_BROKER": self.url(db),
            "BENCH_CELERY_PROFILE": profile,
        }
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.benchmarks.plain_celery",
            "worker",
            f"--concurrency={concurrency}",
            f"--queues={','.join(plain_celery.QUEUES)}",
            f"--hostname=plain-{profile}@%h",
        ]
        if profile != plain_celery.DEFAULTS:
            argv.append("--events")
        return self._spawn(f"celery-{profile}", argv, env, db, f"--loglevel={LOGLEVEL}")

    def _spawn(
        self, name: str, argv: list[str], env: Mapping[str, str], db: int, *extra: str
    ) -> WorkerProcess:
        log = self.log_dir / f"{name}-{next(self._counter)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [*argv, *extra],
                cwd=REPO,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        worker = WorkerProcess(name, popen, log, db)
        self._workers.append(worker)
        worker.wait_consuming(self.db_client(db))
        return worker


def progress(line: str) -> None:
    """One progress line on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def prefill(
    client: redis.Redis,
    queue: str,
    task_name: str,
    kwargs: Iterable[Mapping[str, Any]],
    staging: str = "bench:staging",
) -> int:
    """Build the messages into a staging list, then return how many; see `release`.

    Both systems get the same bytes: `build_message` writes Celery's protocol-2 envelope,
    exactly what `apply_async` LPUSHes (tests/integration/runtime/test_message_format.py
    compares them field by field), so filling is fast and identical for both sides.
    """
    messages = [
        build_message(task_name=task_name, job_id=new_job_id(), queue=queue, args=(), kwargs=kw)
        for kw in kwargs
    ]
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(messages), 1000):
            pipe.lpush(staging, *messages[start : start + 1000])
        pipe.execute()
    return len(messages)


def release(client: redis.Redis, queue: str, staging: str = "bench:staging") -> float:
    """Make a prefilled backlog appear on `queue` at once; returns the monotonic time it did.

    RENAME is atomic and wakes a worker blocked in BRPOP on `queue`, so the whole backlog is
    there from the first fetch and the clock starts at a well-defined instant.
    """
    client.rename(staging, queue)
    return time.monotonic()


def queues_drained(client: redis.Redis, queues: Sequence[str]) -> bool:
    """No message waits in `queues` and none is delivered but unacked (late ack: unfinished)."""
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.llen(queue)
        pipe.hlen(UNACKED)
        return not any(pipe.execute())


def wait_drained(
    client: redis.Redis,
    queues: Sequence[str],
    worker: WorkerProcess,
    timeout: float,
    interval: float = 0.01,
) -> float:
    """Poll until `queues_drained`; return the monotonic time it first held."""

    def drained() -> bool:
        worker.check_alive()
        return queues_drained(client, queues)

    wait_for(drained, timeout=timeout, interval=interval, message=f"{worker.name} to drain")
    return time.monotonic()


def wait_stable_rss(
    worker: WorkerProcess, settle: float = 2.0, timeout: float = 300.0, tolerance: int = 1 << 20
) -> int:
    """RSS once it has not grown by more than `tolerance` bytes for `settle` seconds."""
    deadline = time.monotonic() + timeout
    last = worker.rss()
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        worker.check_alive()
        now = worker.rss()
        if now > last + tolerance:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return max(now, last)
    raise BenchmarkError(f"{worker.name}: RSS still growing after {timeout:.0f}s")


def timed(action: Callable[..., object], *args: Any) -> float:
    """Seconds `action(*args)` took, on the monotonic clock."""
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start
