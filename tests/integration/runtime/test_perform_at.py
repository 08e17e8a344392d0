"""`perform_at` with the seed's own example, a naive `datetime.now() + timedelta(hours=2)`: a
naive datetime is the calling process's local time (Python's rule for `datetime.timestamp()`);
an aware one is exact.

The naive case runs in a child process with TZ=Asia/Kolkata (UTC+05:30), so reading it as UTC
(or as any zone but the local one) would be off by hours and fail.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.runtime.conftest import Spawn
from tests.integration.runtime.jobs.recording import Echo
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

_ENQUEUE_NAIVE = """
from datetime import datetime, timedelta
from tests.integration.runtime.conftest import Spawn
from tests.integration.runtime.jobs.recording import Echo
print(Echo.perform_at(datetime.now() + timedelta(hours=2), user_id=1, data={}).id)
"""


def test_a_naive_datetime_is_local_time_of_the_calling_process(
    rt: Runtime, env: dict[str, str]
) -> None:
    before = time.time()
    done = subprocess.run(
        [sys.executable, "-c", _ENQUEUE_NAIVE],
        env={**env, "TZ": "Asia/Kolkata"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    after = time.time()
    due = rt.redis.zscore(rt.keys.schedule(Echo.queue), done.stdout.strip())
    assert due is not None, done.stderr
    # Two hours from the moment of the call, whatever the process's zone; a wrong reading
    # would be off by 5.5 hours.
    assert before + 7200 <= due <= after + 7200


def test_an_aware_datetime_is_exact(rt: Runtime) -> None:
    when = datetime(2100, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    result = Echo.perform_at(when, user_id=1, data={})
    assert rt.redis.zscore(rt.keys.schedule(Echo.queue), result.id) == when.timestamp()


@pytest.mark.usefixtures("rt")
def test_a_naive_time_in_the_past_runs_now(spawn: Spawn) -> None:
    spawn("worker", "--concurrency=1")
    result = Echo.perform_at(datetime.now() - timedelta(seconds=5), user_id=3, data={})
    assert result.get(timeout=60)["user_id"] == 3
