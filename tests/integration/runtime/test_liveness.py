"""Liveness: the worker's heartbeat proves its consumer fetches from Redis, and beat waits for a
Redis that is not there yet instead of dying."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

import worker_runtime
from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn
from tests.integration.runtime.jobs.recording import Echo
from worker_runtime.core.queues import QUEUES
from worker_runtime.core.settings import Settings
from worker_runtime.local.embedded_redis import EmbeddedRedis, free_port
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration


def _health(env: dict[str, str], component: str, max_age: float) -> int:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "worker_runtime",
            "health",
            f"--component={component}",
            f"--max-age={max_age}",
        ],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    ).returncode


def test_a_worker_alive_but_not_fetching_fails_its_liveness_check_and_recovers(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=1", "--hostname=idle@liveness")
    name = "idle-1@liveness"  # the node name of its one job slot
    env = worker.env
    # The heartbeat beats every 5 s; 8 s leaves room for one late beat.
    wait_for(lambda: _health(env, "worker", 8) == 0, timeout=60, message="a fresh heartbeat")

    # The slot's consumer stops fetching while its process, event loop and timers all keep
    # running: what kombu reconnect bugs leave behind. A timer-only heartbeat would stay fresh,
    # and so would one that only checks that the slot process lives.
    for queue in QUEUES:
        replies = rt.app.control.cancel_consumer(queue, destination=[name], reply=True)
        assert replies, f"{name} did not answer cancel_consumer({queue})"
    wait_for(
        lambda: _health(env, "worker", 8) == 1,
        timeout=60,
        message="the liveness check to fail while the consumer does not fetch",
    )
    assert worker.popen.poll() is None
    assert "withholding the heartbeat" in worker.output()

    for queue in QUEUES:
        rt.app.control.add_consumer(queue, destination=[name], reply=True)
    wait_for(
        lambda: _health(env, "worker", 8) == 0,
        timeout=60,
        message="the heartbeat to resume once the consumer fetches again",
    )
    worker.wait_for_output("heartbeat resumed")


def test_beat_started_before_redis_waits_for_it_then_dispatches(spawn: Spawn) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    beat = spawn("beat", extra_env={"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url})
    beat.wait_for_output("waiting for it, retrying every")
    assert f"127.0.0.1:{port}" in beat.output()
    assert "Traceback" not in beat.output()
    assert beat.popen.poll() is None

    with EmbeddedRedis(port=port) as server:
        client = redis.Redis.from_url(server.url(0))
        try:
            beat.wait_for_output("Redis is reachable again")
            # Beat's dispatcher works: a due job in the schedule set moves onto its queue.
            client.hset("workerpool:schedule:payloads", "j1", "payload")
            client.zadd("workerpool:schedule:default", {"j1": 0})
            wait_for(lambda: client.llen("default") == 1, timeout=30, message="the move")
        finally:
            client.close()
        assert beat.popen.poll() is None


def test_a_worker_started_before_redis_waits_for_it_then_runs_jobs(
    spawn: Spawn, env: dict[str, str]
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    worker = spawn(
        "worker",
        "--concurrency=1",
        extra_env={"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url},
        ready="waiting for it, retrying every",
    )
    assert f"127.0.0.1:{port}" in worker.output()
    assert "ready." not in worker.output()
    assert worker.popen.poll() is None

    with EmbeddedRedis(port=port) as server:
        worker.wait_for_output("Redis answered after")
        worker.wait_for_output("slot(s) consuming")
        local = {"CELERY_BROKER_URL": server.url(0), "CELERY_RESULT_BACKEND": server.url(0)}
        rt = worker_runtime.configure(Settings.from_env({**env, **local}))
        try:
            assert Echo.perform_async(user_id=5, data={}).get(timeout=60)["user_id"] == 5
        finally:
            rt.close()
        assert "Traceback" not in worker.output()
