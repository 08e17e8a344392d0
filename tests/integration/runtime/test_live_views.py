"""Busy and Queues from outside the workers, on a real redis-server with real worker
processes and the real `workerpool busy` / `workerpool queues` commands: a running job is
listed while it runs (not when it ends), with its worker class, arguments, queue, pod and
slot; a finished job leaves the list and counts in its queue's processed rate; waiting jobs
are browsed next-first, one is deleted, a queue is cleared only when confirmed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn, ran
from tests.integration.runtime.jobs.recording import Echo, SleepyDefault
from worker_runtime.runtime import Runtime
from worker_runtime.store import busy

pytestmark = pytest.mark.integration


def cli(env: Mapping[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker_runtime", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def busy_json(env: Mapping[str, str]) -> dict[str, Any]:
    result = cli(env, "busy", "-o", "json")
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def queue(env: Mapping[str, str], name: str) -> dict[str, Any]:
    result = cli(env, "queues", "-o", "json")
    assert result.returncode == 0, result.stderr
    [found] = [q for q in json.loads(result.stdout) if q["name"] == name]
    return dict(found)


def running_ids(rt: Runtime) -> set[str]:
    return {job.id for pod in busy.pods(rt.redis, rt.keys, time.time()) for job in pod.jobs}


def test_a_running_job_is_busy_while_it_runs_and_leaves_when_it_ends(
    rt: Runtime, spawn: Spawn, env: dict[str, str]
) -> None:
    worker = spawn("worker", "--concurrency=2")
    job = SleepyDefault.perform_async(tag="long", seconds=120)  # killed with the worker

    # The store's read (what the command prints) is polled; the command is checked once.
    wait_for(
        lambda: job.id in running_ids(rt),
        timeout=30,
        message=lambda: f"the running job on Busy; worker said:\n{worker.output()[-2000:]}",
    )
    assert job.status == "STARTED"  # listed while it runs, not when it ends
    [pod] = busy_json(env)["pods"]
    [running] = pod["jobs"]
    assert running["id"] == job.id
    assert running["task"] == SleepyDefault.task_name
    assert "long" in running["args"]
    assert running["queue"] == "default"
    assert running["slot"] in (1, 2)
    [start] = [r for r in ran(rt.redis, "sleepy") if r["tag"] == "long"]
    assert abs(running["started_at"] - float(str(start["started"]))) < 2
    assert pod["pod"] == socket.gethostname()
    assert pod["slots"] == 2
    assert pod["rss_kib"] > 10_000
    assert pod["queues"] == ["critical", "default", "low"]
    table = cli(env, "busy").stdout
    assert "1/2" in table
    assert job.id in table
    assert SleepyDefault.task_name in table

    short = SleepyDefault.perform_async(tag="short", seconds=2)
    wait_for(lambda: short.id in running_ids(rt), timeout=30, message="the short job on Busy")
    wait_for(lambda: short.id not in running_ids(rt), timeout=30, message="it to leave Busy")
    assert short.status == "SUCCESS"
    assert running_ids(rt) == {job.id}
    assert queue(env, "default")["processed_per_minute"] > 0


def test_waiting_jobs_are_browsed_deleted_and_cleared(rt: Runtime, env: dict[str, str]) -> None:
    before = time.time()
    ids = [Echo.perform_async(user_id=i, data={"n": i}).id for i in range(5)]

    info = queue(env, Echo.queue)
    assert info["depth"] == 5
    assert 0 <= info["latency"] <= time.time() - before + 1

    shown = json.loads(cli(env, "queues", "show", Echo.queue, "-o", "json").stdout)
    assert [j["id"] for j in shown] == ids  # next to run first
    assert shown[0]["kwargs"] == {"user_id": 0, "data": {"n": 0}}
    page = json.loads(cli(env, "queues", "show", Echo.queue, "--start=3", "-o", "json").stdout)
    assert [j["id"] for j in page] == ids[3:]

    assert cli(env, "queues", "delete", Echo.queue, ids[2]).returncode == 0
    assert [
        j["id"] for j in json.loads(cli(env, "queues", "show", Echo.queue, "-o", "json").stdout)
    ] == [
        *ids[:2],
        *ids[3:],
    ]
    missing = cli(env, "queues", "delete", Echo.queue, ids[2])
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"Error: job '{ids[2]}' is not waiting in queue 'default'"
    bad = cli(env, "queues", "show", "nope")
    assert bad.returncode == 2
    assert "'nope' is not one of critical, default, low" in bad.stderr

    refused = cli(env, "queues", "clear", Echo.queue, stdin="n\n")
    assert refused.returncode == 1
    assert rt.redis.llen(Echo.queue) == 4
    cleared = cli(env, "queues", "clear", Echo.queue, "--yes")
    assert cleared.stdout.strip() == "deleted 4 job(s) from default"
    assert rt.redis.llen(Echo.queue) == 0
