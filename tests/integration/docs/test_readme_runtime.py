"""The README's Python examples run as written, against a real worker."""

from __future__ import annotations

import re
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
