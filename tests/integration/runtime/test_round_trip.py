"""perform_async -> Redis -> a real worker -> result readable from any process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.runtime.conftest import Spawn
from tests.integration.runtime.jobs.recording import Echo

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("rt")
def test_perform_async_result_is_readable_from_another_process(
    spawn: Spawn, env: dict[str, str]
) -> None:
    spawn("worker", "--concurrency=2")

    result = Echo.perform_async(user_id=123, data={"k": "v"})
    assert result.get(timeout=30) == {"user_id": 123, "data": {"k": "v"}, "status": "completed"}

    reader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, worker_runtime\n"
            "from celery.result import AsyncResult\n"
            "worker_runtime.current()\n"
            "r = AsyncResult(sys.argv[1])\n"
            "print(r.status, r.result['status'])",
            result.id,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert reader.stdout.split() == ["SUCCESS", "completed"]
