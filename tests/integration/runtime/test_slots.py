"""`workerpool worker --concurrency N` is a supervisor of N job slots (supervisor.py, slot.py),
each a Celery worker running its job inline. What the prefork pool gave must hold: hard and
soft time limits, recycling, warm and cold shutdown, liveness during long jobs, one node name
per slot, and the pod's once-only duties (schedule dispatcher) run once per pod."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.recording import Echo, Overruns, SleepyDefault
from worker_runtime.local.embedded_redis import EmbeddedRedis
from worker_runtime.runtime import Runtime
from worker_runtime.store.dead import DeadJob, DeadJobs

pytestmark = pytest.mark.integration


def _dead(rt: Runtime, job_id: str) -> DeadJob:
    store = DeadJobs(rt.redis, rt.keys)
    dead = wait_for(
        lambda: store.get(job_id),
        timeout=90,
        message=lambda: f"{job_id} in the dead set ({len(ran(rt.redis, 'overruns'))} runs)",
    )
    assert isinstance(dead, DeadJob)
    return dead


def _pids(rt: Runtime, kind: str) -> list[int]:
    return [int(str(run["pid"])) for run in ran(rt.redis, kind)]


def test_a_job_past_the_hard_time_limit_fails_with_time_limit_exceeded_and_its_slot_is_replaced(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=1", "--time-limit=1.5")
    result = Overruns.perform_async(key="hard", seconds=600)

    dead = _dead(rt, result.id)
    assert dead.attempts == Overruns.max_retries + 1
    assert dead.error.startswith("TimeLimitExceeded: time limit exceeded"), dead.error
    assert "SIGKILL" not in dead.error
    runs = _pids(rt, "overruns")
    assert len(runs) == 2
    assert runs[0] != runs[1], "the killed slot was replaced"
    # The dead record comes first; Celery then stores FAILURE, then acks.
    wait_for(lambda: rt.redis.hlen("unacked") == 0, timeout=30, message="the last ack")
    assert result.state == "FAILURE"
    # The pod goes on with a fresh slot.
    assert Echo.perform_async(user_id=7, data={}).get(timeout=60)["user_id"] == 7
    assert worker.popen.poll() is None
    assert "time limit exceeded" in worker.output()


def test_a_job_past_the_soft_time_limit_gets_soft_time_limit_exceeded_in_its_slot(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=1", "--soft-time-limit=0.5")
    result = Overruns.perform_async(key="soft", seconds=600)

    dead = _dead(rt, result.id)
    assert dead.error.startswith("SoftTimeLimitExceeded: "), dead.error
    assert dead.attempts == Overruns.max_retries + 1
    # Raised inside the job: the slot lived on (one process ran both attempts and the next job).
    assert Echo.perform_async(user_id=1, data={}).get(timeout=60)["user_id"] == 1
    assert len(set(_pids(rt, "overruns") + _pids(rt, "echo"))) == 1


def test_a_slot_is_replaced_after_max_tasks_per_child_jobs(rt: Runtime, spawn: Spawn) -> None:
    spawn("worker", "--concurrency=1", "--max-tasks-per-child=2")
    for i in range(5):  # one at a time, so each job's slot is the one left after the last
        assert Echo.perform_async(user_id=i, data={}).get(timeout=60)["user_id"] == i

    pids = _pids(rt, "echo")
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4], pids


def test_a_slot_is_replaced_after_a_job_leaves_it_above_max_memory_per_child(
    rt: Runtime, spawn: Spawn
) -> None:
    # 1 KiB: every slot is above it after any job.
    spawn("worker", "--concurrency=1", "--max-memory-per-child=1")
    for i in range(3):
        assert Echo.perform_async(user_id=i, data={}).get(timeout=60)["user_id"] == i
    assert len(set(_pids(rt, "echo"))) == 3


def test_sigterm_lets_every_slots_job_finish_then_the_worker_exits_zero(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=2")
    results = [SleepyDefault.perform_async(tag=f"warm-{i}", seconds=2.0) for i in range(2)]
    wait_for(
        lambda: len(ran(rt.redis, "sleepy")) == 2,
        timeout=60,
        interval=0.05,
        message="both jobs to start, one per slot",
    )
    os.kill(worker.popen.pid, signal.SIGTERM)  # the supervisor only, as Kubernetes does

    assert worker.popen.wait(timeout=60) == 0, worker.output()[-3000:]
    assert [r.get(timeout=5) for r in results] == ["warm-0", "warm-1"]
    assert rt.redis.hlen("unacked") == 0
    assert rt.redis.llen("default") == 0


def test_a_second_sigterm_is_a_cold_shutdown_that_requeues_the_running_job(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=1")
    result = Overruns.perform_async(key="cold", seconds=600)
    wait_for(lambda: ran(rt.redis, "overruns"), timeout=60, message="the job to start")
    os.kill(worker.popen.pid, signal.SIGTERM)
    worker.wait_for_output("warm shutdown")
    os.kill(worker.popen.pid, signal.SIGTERM)

    assert worker.popen.wait(timeout=60) == 1, worker.output()[-3000:]
    # Back on its queue at once (not after its lease), its loss on record for the next run.
    assert rt.redis.hlen("unacked") == 0
    assert rt.redis.llen(Overruns.queue) == 1
    reason = rt.redis.get(rt.keys.lost(result.id, 0))
    assert reason is not None
    assert b"cold shutdown" in reason


def _health(env: dict[str, str], max_age: float) -> int:
    return subprocess.run(
        [sys.executable, "-m", "worker_runtime", "health", "--component=worker",
         f"--max-age={max_age}"],
        env=env, capture_output=True, timeout=60, check=False,
    ).returncode  # fmt: skip


def test_the_heartbeat_stays_fresh_while_a_slot_runs_a_job_longer_than_the_fetch_deadline(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=1")
    result = SleepyDefault.perform_async(tag="long", seconds=16.0)  # > FETCH_STALE (10 s)
    wait_for(lambda: ran(rt.redis, "sleepy"), timeout=60, message="the long job to start")
    started = time.time()
    checks: list[int] = []

    def probe_until_done() -> bool:
        # Probe as the kubelet does, while the job runs (its slot fetches nothing then).
        checks.append(_health(worker.env, 8))
        assert checks[-1] == 0, worker.output()[-3000:]
        return bool(result.state == "SUCCESS")

    wait_for(probe_until_done, timeout=90, interval=0.5, message="the long job to finish")
    assert time.time() - started > 10, "the job outlasted the fetch deadline"
    assert "withholding" not in worker.output()


def test_each_slot_is_its_own_node_and_the_pod_runs_one_schedule_dispatcher(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=3", "--hostname=pod@test")
    expected = {"pod-1@test", "pod-2@test", "pod-3@test"}
    answered: set[str] = set()

    def every_slot_answered() -> bool:
        answered.update(name for reply in rt.app.control.ping(timeout=2.0) for name in reply)
        return answered >= expected

    wait_for(every_slot_answered, timeout=60, message=lambda: f"pings answered: {answered}")
    assert answered == expected
    # One subscription to the schedule's wake channel per pod, not per slot.
    channel = rt.keys.schedule_wake

    def subscribers() -> int:
        return int(dict(rt.redis.pubsub_numsub(channel))[channel.encode()])

    wait_for(subscribers, timeout=30, message="the dispatcher to subscribe")
    assert subscribers() == 1


def test_flower_hears_a_slots_heartbeat_while_its_job_blocks_the_slots_event_loop(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=1", "--hostname=busy@test")
    heard: list[dict[str, object]] = []
    with rt.app.connection_for_read() as connection:
        receiver = rt.app.events.Receiver(
            connection, handlers={"worker-heartbeat": heard.append}, node_id="test-listener"
        )
        listener = threading.Thread(target=receiver.capture, daemon=True)
        listener.start()
        try:
            # Celery's own heartbeat comes from the slot's event loop, which never says a job is
            # active: a solo slot's loop is blocked while its job runs.
            result = SleepyDefault.perform_async(tag="blocks", seconds=6.0)
            assert result.get(timeout=60) == "blocks"
            wait_for(
                lambda: any(e["hostname"] == "busy-1@test" and e["active"] == 1 for e in heard),
                timeout=30,
                message=lambda: f"a heartbeat naming the running job ({len(heard)} heard)",
            )
        finally:
            receiver.should_stop = True
            listener.join(timeout=10)


def test_a_worker_whose_redis_stops_answering_still_finishes_its_warm_shutdown(
    spawn: Spawn,
) -> None:
    # A Redis that neither answers nor closes its connections: its pod deleted with the pool
    # (the peer's address vanishes) or, as here, a stopped process. Before: Celery's event
    # heartbeat reconnected forever inside the slot's event loop and sockets had no timeout, so
    # the warm shutdown never came and the pod waited out its whole grace period.
    with EmbeddedRedis() as silent:
        url = silent.url(0)
        env = {"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}
        worker = spawn("worker", "--concurrency=1", extra_env=env)
        assert silent.process is not None
        silent.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(3)  # at least one heartbeat falls due while Redis is silent
            worker.signal(signal.SIGTERM)
            # Bounded by kombu's 31 s stale-BRPOP check and the sockets' 10 s timeouts; a
            # hang is the failure this test is for, so the deadline is generous.
            wait_for(
                lambda: worker.popen.poll() is not None,
                timeout=240,
                interval=1,
                message=lambda: f"the worker to exit:\n{worker.output()[-2000:]}",
            )
        finally:
            silent.process.send_signal(signal.SIGCONT)
    assert worker.popen.returncode == 0, worker.output()[-2000:]
