"""No message can stop a worker, and none that cannot run vanishes: each is kept in the dead set
with its raw body (size-capped), the reason and its queue, and `workerpool dead` lists,
retries (once it can run, e.g. after a deploy adds its task) and purges it.

Before: `LPUSH default garbage` made the worker exit; JSON that is not an envelope was dropped
with "Connection to broker lost"; an unknown task was dropped with one log line.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn
from tests.integration.runtime.jobs.recording import Echo
from worker_runtime.core.messages import build_message
from worker_runtime.runtime import Runtime
from worker_runtime.store.dead import RAW_LIMIT, DeadJobs

pytestmark = pytest.mark.integration


def workerpool(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker_runtime", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _envelope(**changes: object) -> str:
    envelope = json.loads(
        build_message(task_name=Echo.task_name, job_id="x", queue="default", args=[], kwargs={})
    )
    envelope.update(changes)
    return json.dumps(envelope)


BAD = {
    "garbage": ("garbage", "not JSON"),
    "json-number": ("42", "not a message envelope: a JSON int"),
    "json-object": ('{"a": 1}', "no 'properties' object"),
    "json-list": ("[1, 2]", "a JSON list"),
    "no-delivery-tag": (_envelope(properties={"delivery_info": {}}), "'properties.delivery_tag'"),
    "task-not-a-string": (
        _envelope(headers={"task": ["a"], "id": "t1"}),
        "'headers.task' is not a string",
    ),
    "body-not-base64": (_envelope(body="%%%"), "not valid base64"),
    "no-task-header": (_envelope(headers={"id": "t2"}), "no 'task' header"),
    "body-not-json": (
        _envelope(body=base64.b64encode(b"{not json").decode()),
        "body cannot be decoded",
    ),
    "huge-garbage": ("x" * (RAW_LIMIT + 10), "not JSON"),
}


def test_messages_that_are_not_jobs_are_kept_and_the_worker_keeps_running(
    rt: Runtime, spawn: Spawn, env: dict[str, str]
) -> None:
    worker = spawn("worker", "--concurrency=1")
    for raw, _ in BAD.values():
        rt.redis.lpush("default", raw)
    store = DeadJobs(rt.redis, rt.keys)

    wait_for(
        lambda: store.count() >= len(BAD),
        timeout=60,
        message=lambda: f"{len(BAD)} dead records (have {store.count()})",
    )
    records = {job.raw: job for job in store.list(100) if job.raw is not None}
    for name, (raw, reason) in BAD.items():
        job = records.get(raw[:RAW_LIMIT])
        assert job is not None, f"{name}: no dead record"
        assert reason in job.error, f"{name}: {job.error}"
        assert job.queue == "default"
        assert job.raw_truncated == (len(raw) > RAW_LIMIT), name
        assert job.raw is not None
        assert len(job.raw) <= RAW_LIMIT
    assert worker.popen.poll() is None, worker.output()[-3000:]
    assert Echo.perform_async(user_id=2, data={}).get(timeout=60)["user_id"] == 2
    # The ack follows the result write (late ack), so the last job may still be unacked here.
    wait_for(lambda: rt.redis.hlen("unacked") == 0, timeout=10, message="every message acked")

    listing = workerpool(env, "dead", "list", "--limit", "100")
    assert listing.returncode == 0, listing.stderr
    assert "not JSON" in listing.stdout
    garbage = next(job for job in store.list(100) if job.raw == "garbage")
    shown = workerpool(env, "dead", "show", garbage.id)
    assert "queue:     default" in shown.stdout
    assert "raw: 'garbage'" in shown.stdout
    truncated = next(job for job in store.list(100) if job.raw_truncated)
    refused = workerpool(env, "dead", "retry", truncated.id)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"Error: {truncated.id}: its body was longer than {RAW_LIMIT} bytes and was truncated; "
        "it cannot be retried, only purged"
    ]
    purged = workerpool(env, "dead", "purge", "--yes")
    assert purged.stdout.strip() == f"purged {len(BAD)} dead job(s)"


def test_an_unknown_task_is_kept_and_runs_when_retried_after_a_deploy_adds_it(
    rt: Runtime, spawn: Spawn, env: dict[str, str]
) -> None:
    # A worker deployed without the task (only the example workers), past the grace period
    # a rolling deploy gets (test_process_hygiene.py)...
    old = spawn(
        "worker",
        "--concurrency=1",
        extra_env={
            "WORKER_PACKAGES": "worker_runtime.examples",
            "WORKERPOOL_UNKNOWN_TASK_GRACE": "1",
        },
    )
    result = Echo.perform_async(user_id=5, data={"k": "v"})
    store = DeadJobs(rt.redis, rt.keys)
    dead = wait_for(lambda: store.get(result.id), timeout=60, message="the unknown task's record")
    assert dead is not None
    assert f"unknown task {Echo.task_name!r}" in dead.error
    assert "grace 1s" in dead.error
    assert dead.task == Echo.task_name
    assert old.popen.poll() is None
    old.stop()

    # ...then a deploy that has it: retry puts the original message back unchanged.
    spawn("worker", "--concurrency=1")
    retried = workerpool(env, "dead", "retry", result.id)
    assert retried.returncode == 0, retried.stderr
    assert result.get(timeout=60) == {"user_id": 5, "data": {"k": "v"}, "status": "completed"}
    assert store.count() == 0
