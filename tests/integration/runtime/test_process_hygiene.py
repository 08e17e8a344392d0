"""Worker processes that behave in a container (issue 22), on real worker processes: what a
job starts dies with its slot, signals are handled as a platform engineer expects, only worker
classes run, an unknown one waits out a rolling deploy, and `sys.exit` in a job is a failed
attempt.

Each test failed before: the job's `sleep` children outlived the hard limit; SIGHUP killed the
supervisor; a job ignoring SIGTERM kept its slot consuming; `celery.accumulate` ran from the
queue; an unknown task was dead at once; `sys.exit(3)` left the job STARTED.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.processes import CallsExit, IgnoresSigterm, StartsChildren
from tests.integration.runtime.jobs.recording import Counted, Echo
from worker_runtime.core.messages import build_message
from worker_runtime.runtime import Runtime
from worker_runtime.store.dead import DeadJob, DeadJobs

pytestmark = pytest.mark.integration


def test_a_hard_limited_jobs_own_processes_die_with_its_slot_and_none_stays_a_zombie(
    rt: Runtime, spawn: Spawn
) -> None:
    spawn("worker", "--concurrency=1", "--time-limit=1")
    result = StartsChildren.perform_async(key="kids", count=3)
    runs = wait_for(lambda: ran(rt.redis, "starts_children"), timeout=60, message="the job")
    children: list[int] = list(runs[0]["children"])  # type: ignore[call-overload]
    assert len(children) == 3
    assert all(psutil.pid_exists(pid) for pid in children)

    # Recorded just before the supervisor kills the slot.
    wait_for(lambda: rt.redis.get(rt.keys.lost(result.id, 0)), timeout=30, message="the hard kill")
    # Gone, not zombies: pid_exists is true for a zombie until its parent reaps it.
    wait_for(
        lambda: not any(psutil.pid_exists(pid) for pid in children),
        timeout=1.0,
        message=lambda: f"the job's children to be gone: {_alive(children)}",
    )


def _alive(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            out.append(f"{pid} {process.status()} ppid={process.ppid()}")
        except psutil.NoSuchProcess:
            continue
    return out


#: cgroup v1's pids controller, where this machine (root in CI) can cap a process's forks.
PIDS_CGROUPS = Path("/sys/fs/cgroup/pids")


@contextlib.contextmanager
def pids_cgroup() -> Iterator[Path]:
    if not os.access(PIDS_CGROUPS, os.W_OK):
        # Never a skip: `make test` runs as root on a cgroup v1 machine, where this must run.
        pytest.fail(f"needs a writable pids cgroup at {PIDS_CGROUPS} (root, cgroup v1)")
    group = PIDS_CGROUPS / f"workerpool-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        yield group
    finally:
        (group / "pids.max").write_text("max")
        wait_for(
            lambda: not (group / "cgroup.procs").read_text().strip(),
            timeout=30,
            message="the test cgroup to empty",
        )
        group.rmdir()


@pytest.mark.usefixtures("rt")
def test_a_failed_fork_under_a_pid_limit_is_logged_and_retried_not_fatal(spawn: Spawn) -> None:
    worker = spawn("worker", "--concurrency=1")
    with pids_cgroup() as group:
        try:
            (group / "cgroup.procs").write_text(str(worker.popen.pid))
            (group / "pids.max").write_text("1")  # the supervisor alone: every fork fails
            for child in psutil.Process(worker.popen.pid).children():  # slot and duties
                child.kill()

            worker.wait_for_output("slot 1 could not be forked")
            worker.wait_for_output("the duties process could not be forked")
            assert worker.popen.poll() is None, worker.output()[-3000:]
            (group / "pids.max").write_text("max")
            assert Echo.perform_async(user_id=4, data={}).get(timeout=60)["user_id"] == 4
            assert worker.popen.poll() is None
        finally:
            worker.signal(signal.SIGKILL)
            worker.popen.wait()


def test_sighup_is_logged_and_ignored_and_the_running_job_finishes_once(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=1")
    result = Counted.perform_async(n=1, seconds=3)
    wait_for(lambda: result.state == "STARTED", timeout=60, message="the job to start")
    supervisor = psutil.Process(worker.popen.pid)
    for process in [supervisor, *supervisor.children()]:  # the slot and the duties process too
        process.send_signal(signal.SIGHUP)

    assert result.get(timeout=30) == 1
    assert Counted.perform_async(n=2).get(timeout=30) == 2
    wait_for(lambda: rt.redis.hlen("unacked") == 0, timeout=10, message="every message acked")
    assert [run["n"] for run in ran(rt.redis, "counted")] == [1, 2]
    assert worker.popen.poll() is None, worker.output()[-3000:]
    assert "SIGHUP: ignored" in worker.output()
    assert "Restarting celery worker" not in worker.output()
    assert worker.stop() == 0, worker.output()[-3000:]


def test_a_job_that_ignores_sigterm_does_not_keep_its_slot_consuming_after_a_warm_shutdown(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=1")
    first = IgnoresSigterm.perform_async(key="deaf", seconds=2)
    wait_for(lambda: ran(rt.redis, "ignores_sigterm"), timeout=60, message="the job to start")
    os.kill(worker.popen.pid, signal.SIGTERM)
    worker.wait_for_output("warm shutdown")
    later = Counted.perform_async(n=1)

    assert worker.popen.wait(timeout=30) == 0, worker.output()[-3000:]
    assert first.state == "SUCCESS"
    assert ran(rt.redis, "counted") == [], "the slot took a job after the warm shutdown"
    assert rt.redis.llen(Counted.queue) == 1
    assert later.state == "PENDING"


def test_a_slot_gets_its_sigterm_handler_back_after_a_job_that_ignored_it(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=1")
    assert IgnoresSigterm.perform_async(key="done", seconds=0).get(timeout=60) == "done"
    wait_for(lambda: rt.redis.hlen("unacked") == 0, timeout=10, message="the ack")

    # The idle slot hears the warm shutdown itself (no job ends to read the stop flag).
    assert worker.stop() == 0, worker.output()[-3000:]
    assert "the job changed the SIGTERM handler" in worker.output()


def test_a_job_calling_sys_exit_fails_that_attempt_and_is_retried_then_dead(
    rt: Runtime, spawn: Spawn
) -> None:
    worker = spawn("worker", "--concurrency=1")
    result = CallsExit.perform_async(key="bye", code=3)
    store = DeadJobs(rt.redis, rt.keys)
    dead = wait_for(lambda: store.get(result.id), timeout=60, message="the dead record")
    assert isinstance(dead, DeadJob)
    assert dead.attempts == CallsExit.max_retries + 1
    assert dead.error == f"JobExitError: {CallsExit.task_name}.perform called sys.exit(3)"
    runs = ran(rt.redis, "calls_exit")
    assert len(runs) == 2
    assert runs[0]["pid"] == runs[1]["pid"], "the slot went on taking jobs"
    wait_for(lambda: rt.redis.hlen("unacked") == 0, timeout=10, message="the last ack")
    assert result.state == "FAILURE"
    assert worker.popen.poll() is None


def _forged(name: str, job_id: str, **kwargs: Any) -> str:
    args = kwargs.pop("args", [])
    return build_message(task_name=name, job_id=job_id, queue="default", args=args, kwargs=kwargs)


def test_celery_builtin_tasks_from_the_queue_run_nothing(rt: Runtime, spawn: Spawn) -> None:
    spawn("worker", "--concurrency=1")
    builtins = sorted(name for name in rt.app.tasks if name.startswith("celery."))
    assert {"celery.accumulate", "celery.backend_cleanup", "celery.chord_unlock"} <= set(builtins)
    callback = {"task": Echo.task_name, "args": [], "kwargs": {"data": {}}, "options": {}}
    for name in builtins:
        extra: dict[str, Any] = {"args": [1, 2]}
        if name == "celery.chord_unlock":
            # Applies `callback` once the (empty) group is ready: Echo would run.
            extra = {"group_id": "g", "callback": callback, "result": []}
        rt.redis.lpush("default", _forged(name, f"forged-{name}", **extra))
    store = DeadJobs(rt.redis, rt.keys)

    for name in builtins:
        dead = _refused(store, f"forged-{name}")
        assert "Celery built-in" in dead.error, dead.error
        assert dead.task == name
        assert rt.app.AsyncResult(f"forged-{name}").state != "SUCCESS", name
    assert Echo.perform_async(user_id=9, data={}).get(timeout=60)["user_id"] == 9
    wait_for(lambda: rt.redis.hlen("unacked") == 0, timeout=10, message="every message acked")
    assert [run["user_id"] for run in ran(rt.redis, "echo")] == [9]
    assert rt.redis.llen("default") == 0


def _refused(store: DeadJobs, job_id: str) -> DeadJob:
    dead = wait_for(lambda: store.get(job_id), timeout=60, message=f"{job_id} refused")
    assert isinstance(dead, DeadJob)
    return dead


def test_an_unknown_worker_class_waits_for_the_deploy_that_adds_it(
    rt: Runtime, spawn: Spawn
) -> None:
    # The old image: only the example workers; the new one (below) has Echo.
    old = spawn(
        "worker", "--concurrency=1", extra_env={"WORKER_PACKAGES": "worker_runtime.examples"}
    )
    result = Echo.perform_async(user_id=3, data={})
    wait_for(
        lambda: rt.redis.zscore(rt.keys.schedule(Echo.queue), result.id) is not None,
        timeout=60,
        message="the refused message back in the schedule set",
    )
    old.wait_for_output("offered again")
    assert old.stop() == 0
    spawn("worker", "--concurrency=1")

    assert result.get(timeout=60)["user_id"] == 3
    assert DeadJobs(rt.redis, rt.keys).count() == 0
