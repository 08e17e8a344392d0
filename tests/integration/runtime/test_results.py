"""The result backend: Celery's documents and its "SUCCESS is final" rule, one round trip per
state written."""

from __future__ import annotations

import pytest
from celery import states
from celery.result import AsyncResult

from worker_runtime.app import create_app
from worker_runtime.runtime import Runtime
from worker_runtime.store.results import ResultBackend

pytestmark = pytest.mark.integration


def _calls(rt: Runtime, command: str) -> int:
    stats = rt.redis.info("commandstats").get(f"cmdstat_{command}", {"calls": 0})
    return int(stats["calls"])


def test_the_backend_is_ours_even_when_the_environment_names_the_url(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Celery prefers CELERY_RESULT_BACKEND from the environment over its setting; every
    deployment sets that variable."""
    monkeypatch.setenv("CELERY_RESULT_BACKEND", rt.settings.result_backend)
    app = create_app(rt.settings)
    try:
        assert isinstance(app.backend, ResultBackend)
    finally:
        app.close()
        rt.app.set_current()  # create_app made the new app current


def test_each_state_is_one_script_call_and_reads_back_as_celery_wrote_it(rt: Runtime) -> None:
    backend = rt.app.backend
    assert isinstance(backend, ResultBackend)

    backend.store_result("job-1", {"pid": 1}, states.STARTED)
    assert AsyncResult("job-1", app=rt.app).state == states.STARTED
    rt.redis.config_resetstat()  # the script is loaded now; count one state's write
    backend.store_result("job-1", {"answer": 42}, states.SUCCESS)
    assert (_calls(rt, "evalsha"), _calls(rt, "multi")) == (1, 0)

    result = AsyncResult("job-1", app=rt.app)
    assert (result.state, result.result) == (states.SUCCESS, {"answer": 42})
    assert 0 < rt.redis.ttl(backend.get_key_for_task("job-1")) <= rt.settings.result_expires


def test_a_stored_success_is_never_overwritten_by_a_later_run(rt: Runtime) -> None:
    """A duplicate delivery (late ack, lost worker) must not turn a SUCCESS back into STARTED
    or FAILURE: Celery's own rule, kept."""
    backend = rt.app.backend
    backend.store_result("job-2", "first", states.SUCCESS)
    backend.store_result("job-2", {"pid": 2}, states.STARTED)
    backend.store_result("job-2", ValueError("late"), states.FAILURE)

    result = AsyncResult("job-2", app=rt.app)
    assert (result.state, result.result) == (states.SUCCESS, "first")


def test_get_wakes_on_the_published_result(rt: Runtime) -> None:
    """`AsyncResult.get()` waits on Redis pub/sub: the script must still publish."""
    result = AsyncResult("job-3", app=rt.app)
    backend = rt.app.backend
    # Subscribes before the write, as `get` does for a job it just queued.
    backend.result_consumer.consume_from("job-3")
    backend.store_result("job-3", [1, 2], states.SUCCESS)
    assert result.get(timeout=10) == [1, 2]
