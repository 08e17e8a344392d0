"""One bad schedule never stops beat from running the others.

Beat runs two every-second cron workers from a package written here; one schedule's Redis state
is damaged (its fencing token holds a list, so every read of it fails). Beat logs that schedule
by name on each pass and keeps firing the other.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Spawn
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

PACKAGE = "beat_case"

SOURCE = textwrap.dedent("""\
    from worker_runtime import Worker


    class Good(Worker):
        cron_schedule = "* * * * * *"

        @classmethod
        def perform(cls) -> None:
            pass


    class Damaged(Worker):
        cron_schedule = "* * * * * *"

        @classmethod
        def perform(cls) -> None:
            pass
    """)


def test_a_failing_schedule_is_logged_by_name_and_the_others_keep_firing(
    rt: Runtime, spawn: Spawn, tmp_path: Path
) -> None:
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "crons.py").write_text(SOURCE)
    damaged = f"{PACKAGE}.crons.Damaged"
    rt.redis.rpush(rt.keys.cron_last(damaged), "not a number")  # GET on it now fails

    beat = spawn(
        "beat",
        extra_env={"WORKER_PACKAGES": PACKAGE, "PYTHONPATH": str(tmp_path)},
    )

    # Nothing consumes `default` here, so the good schedule's jobs pile up in the queue.
    def good_jobs() -> int:
        return sum(1 for raw in rt.redis.lrange("default", 0, -1) if b"crons.Good" in raw)

    wait_for(lambda: good_jobs() >= 3, timeout=60, message="three ticks of the good schedule")
    beat.wait_for_output(f"{damaged}: cron schedule '* * * * * *' failed")
    assert beat.popen.poll() is None
    assert not [raw for raw in rt.redis.lrange("default", 0, -1) if b"crons.Damaged" in raw]
