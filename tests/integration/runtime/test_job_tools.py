"""`workerpool scheduled|retries|dead` as a person and a script use them, against real Redis:
aligned tables with relative times, `-o json`, show, run-now, delete, kill, an unknown id as a
one-line error, and `dead purge` asking first."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.integration.runtime.jobs.recording import Counted, Echo
from worker_runtime.runtime import Runtime
from worker_runtime.store.dead import DeadJob, DeadJobs
from worker_runtime.store.history import FailedAttempt, record
from worker_runtime.store.schedule_set import ScheduleSet

pytestmark = pytest.mark.integration


def workerpool(
    env: dict[str, str], *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker_runtime", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.usefixtures("rt")  # perform_in writes through the test's runtime
def test_scheduled_list_is_an_aligned_table_with_relative_times_and_json_for_scripts(
    env: dict[str, str],
) -> None:
    soon = Counted.perform_in(300, n=1)
    later = Echo.perform_in(7200, user_id=3, data={"to": "ada@example.com"})

    table = workerpool(env, "scheduled", "list")
    assert table.returncode == 0, table.stderr
    header, first, second, summary = table.stdout.splitlines()
    assert header.split() == ["ID", "WORKER", "ARGS", "RUNS", "QUEUE"]
    # Columns line up: each column starts where its header does.
    for column in ("WORKER", "RUNS", "QUEUE"):
        assert first[header.index(column) - 2 : header.index(column)] == "  ", column
    assert first.startswith(soon.id)
    assert " n=1 " in first
    assert " in 4m" in first
    assert second.startswith(later.id)
    assert " in 1h59m " in second
    assert summary == "(2 shown of 2 scheduled job(s))"

    data = json.loads(workerpool(env, "scheduled", "list", "-o", "json", "--limit", "1").stdout)
    assert (data["total"], data["next_offset"]) == (2, 1)
    assert [(job["id"], job["kwargs"]) for job in data["jobs"]] == [(soon.id, {"n": 1})]


def test_run_now_and_delete_act_and_an_unknown_id_is_one_line_and_exit_1(
    rt: Runtime, env: dict[str, str]
) -> None:
    run, gone = Counted.perform_in(3600, n=1), Counted.perform_in(3600, n=2)

    assert workerpool(env, "scheduled", "run-now", run.id).stdout == "queued 1 job(s) to run now\n"
    assert workerpool(env, "scheduled", "delete", gone.id).stdout == "deleted 1 job(s)\n"
    assert rt.redis.llen("default") == 1
    assert ScheduleSet(rt.redis, rt.keys).move_due(10**10) == 0

    for args in (
        ("scheduled", "delete", gone.id),
        ("scheduled", "show", "nope"),
        ("retries", "kill", "nope"),
        ("dead", "show", "nope"),
        ("dead", "delete", "nope"),
    ):
        done = workerpool(env, *args)
        assert done.returncode == 1, args
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("Error: "), done.stderr


def test_retries_show_the_last_error_and_kill_moves_them_to_the_dead_set(
    rt: Runtime, env: dict[str, str]
) -> None:
    from tests.integration.scheduling.test_job_browsing import _retry

    retry = _retry(rt, retries=2, error="ConnectionError: smtp down")

    listing = workerpool(env, "retries", "list").stdout
    assert listing.splitlines()[0].split()[-3:] == ["RETRIES", "LAST", "ERROR"]
    assert listing.splitlines()[1].endswith("2        ConnectionError: smtp down"), listing
    shown = workerpool(env, "retries", "show", retry).stdout
    assert "attempt 2 failed" in shown
    assert "ConnectionError: smtp down" in shown

    killed = workerpool(env, "retries", "kill", retry, "--reason", "bad address")
    assert killed.stdout == "moved 1 job(s) to the dead set\n", killed.stderr
    assert "Killed: bad address" in workerpool(env, "dead", "show", retry).stdout


def test_dead_purge_asks_first_and_keeps_everything_unless_told_yes(
    rt: Runtime, env: dict[str, str]
) -> None:
    store = DeadJobs(rt.redis, rt.keys)
    now = time.time()
    store.add(DeadJob("d1", Echo.task_name, "default", [], {}, "ValueError: x", "tb", 3, now, now))
    record(rt.redis, rt.keys, "d1", FailedAttempt(3, "ValueError: x", "tb", now))

    refused = workerpool(env, "dead", "purge", stdin="n\n")
    assert refused.returncode == 1
    assert "delete all 1 dead job(s)? [y/N]" in refused.stdout
    assert store.count() == 1

    assert workerpool(env, "dead", "purge", stdin="y\n").stdout.endswith("purged 1 dead job(s)\n")
    assert store.count() == 0
    assert rt.redis.exists(rt.keys.history("d1")) == 0
