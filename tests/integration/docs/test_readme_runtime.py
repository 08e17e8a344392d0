"""The README's Python examples run as written, against a real worker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.runtime.conftest import Spawn
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

README = Path(__file__).parents[3] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.usefixtures("env")
def test_the_readme_worker_and_job_examples_run_as_written(
    tmp_path: Path, spawn: Spawn, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    define, use = python_blocks()[:2]
    package = tmp_path / "readme_app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "workers.py").write_text(define)
    monkeypatch.syspath_prepend(str(tmp_path))
    spawn(
        "worker",
        "--concurrency=2",
        extra_env={"WORKER_PACKAGES": "readme_app", "PYTHONPATH": str(tmp_path)},
    )

    from readme_app.workers import MyBackgroundWorker  # type: ignore[import-not-found]

    namespace = {"MyBackgroundWorker": MyBackgroundWorker}
    exec(compile(use, str(README), "exec"), namespace)

    assert namespace["result"].get(timeout=30) == {"user_id": 123, "status": "completed"}
    # perform_in, perform_at with an aware and with a naive (local) datetime
    assert rt.redis.zcard(rt.keys.schedule("default")) == 3


def test_a_fresh_process_reads_a_job_status_with_the_readme_s_one_call(
    env: dict[str, str], rt: Runtime
) -> None:
    """A web app that enqueued nothing checks a job id: the README's block, run as written in
    a new interpreter that has only CELERY_BROKER_URL."""
    from tests.integration.runtime.jobs.recording import Echo

    block = next(block for block in python_blocks() if "def job_status" in block)
    later = Echo.perform_in(3600, user_id=1, data={})
    done = subprocess.run(
        [sys.executable, "-c", f"{block}\nimport sys\nprint(job_status(sys.argv[1]))", later.id],
        env={name: value for name, value in env.items() if name != "WORKER_PACKAGES"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SCHEDULED"
    assert rt.redis.zscore(rt.keys.schedule(Echo.queue), later.id) is not None
