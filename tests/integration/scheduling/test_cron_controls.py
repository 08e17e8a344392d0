"""Cron schedules seen and steered from outside beat, with a real beat process and the real
`workerpool cron` command: beat declares its schedules in Redis, `cron list` shows them with
their next and last run, `disable` stops every beat firing (the ticks pass unfired), `enable`
resumes from the next tick, `run-now` enqueues one job. No worker runs: fired jobs stay on
their queue, where the test counts them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.conftest import Spawn
from tests.integration.scheduling.cronjobs.switchable import SCHEDULE, Switchable
from worker_runtime.core.keys import Keys
from worker_runtime.core.messages import decode_message
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

KEYS = Keys()
MODULE = "tests.integration.scheduling.cronjobs.switchable"


def cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker_runtime", "cron", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def token(rt: Runtime) -> float:
    raw = rt.redis.get(KEYS.cron_last(Switchable.task_name))
    return -1.0 if raw is None else float(raw)


def test_a_disabled_schedule_does_not_fire_until_enabled_and_run_now_enqueues_once(
    rt: Runtime, spawn: Spawn, env: dict[str, str]
) -> None:
    spawn("beat", extra_env={"WORKER_PACKAGES": MODULE})
    queue = Switchable.queue
    wait_for(lambda: rt.redis.llen(queue) >= 1, timeout=30, message="the first cron job")

    listed = json.loads(cli(env, "list", "-o", "json").stdout)
    [entry] = listed
    assert entry["schedule"]["task"] == Switchable.task_name
    assert entry["schedule"]["expression"] == SCHEDULE
    assert entry["schedule"]["timezone"] == "UTC"
    assert entry["enabled"] is True
    assert entry["last_job"] is not None
    assert entry["last_status"] == "PENDING"
    assert entry["next_run"] > entry["last_tick"]
    table = cli(env, "list").stdout
    assert Switchable.task_name in table
    assert "yes" in table

    done = cli(env, "disable", Switchable.task_name)
    assert done.returncode == 0, done.stderr
    # Fire scripts are atomic and check the set: none that runs after the disable pushes.
    held = rt.redis.llen(queue)
    passed = token(rt)
    wait_for(lambda: token(rt) >= passed + 2, timeout=10, message="two ticks to pass")
    assert rt.redis.llen(queue) == held, "a disabled schedule fired"
    assert json.loads(cli(env, "list", "-o", "json").stdout)[0]["enabled"] is False

    assert cli(env, "enable", Switchable.task_name).returncode == 0
    wait_for(lambda: rt.redis.llen(queue) > held, timeout=10, message="firing to resume")

    before = rt.redis.llen(queue)
    ran_now = cli(env, "run-now", Switchable.task_name)
    assert ran_now.returncode == 0, ran_now.stderr
    job_id = ran_now.stdout.strip().rsplit(" ", 1)[-1]
    queued_ids = [decode_message(raw)["id"] for raw in rt.redis.lrange(queue, 0, -1)]
    assert job_id in queued_ids
    assert rt.redis.llen(queue) >= before + 1


def test_an_unknown_schedule_is_a_one_line_error(rt: Runtime, env: dict[str, str]) -> None:
    for action in ("enable", "disable", "run-now"):
        result = cli(env, action, "no.such.Worker")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "Error: no cron schedule named 'no.such.Worker' (known: none)"
        ]
    assert rt.redis.llen("default") == 0
