"""Logger: the jobs' logging facade, with text or JSON lines output."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from worker_runtime import Logger
from worker_runtime.jobs.logger import configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_message_level_and_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    Logger.info(message="Processing user 7", user_id=7)
    Logger.debug(message="not shown at INFO")

    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "Processing user 7"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "workerpool.jobs"
    assert entry["user_id"] == 7


def test_exceptions_are_included_in_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        raise ValueError("bad row")
    except ValueError:
        Logger.exception(message="import failed")
    entry = json.loads(capsys.readouterr().err)
    assert "ValueError: bad row" in entry["exception"]


def test_text_format_is_human_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    Logger.error(message="Backend is unhealthy: status 500")
    assert "ERROR" in capsys.readouterr().err


def test_lines_logged_inside_a_job_carry_its_id_and_worker_class(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from celery import Celery

    app = Celery("logger-test", set_as_current=False)

    # A task class named after its worker, as the registry's make_task names it.
    def SendReceipt() -> None:
        Logger.info(message="sending", order_id=42)
        logging.getLogger("myapp.mail").warning("slow SMTP")

    task = app.task(SendReceipt, name="myapp.workers.SendReceipt", shared=False)
    configure_logging("INFO", "text")
    task.apply(task_id="job-1")
    Logger.info(message="outside any job")
    text = capsys.readouterr().err.splitlines()
    assert text[0].endswith("workerpool.jobs: SendReceipt[job-1]: sending"), text
    assert text[1].endswith("myapp.mail: SendReceipt[job-1]: slow SMTP"), text
    assert text[-1].endswith("workerpool.jobs: outside any job"), text

    configure_logging("INFO", "json")
    task.apply(task_id="job-2")
    entry = json.loads(capsys.readouterr().err.splitlines()[0])
    assert (entry["job_id"], entry["worker"], entry["order_id"]) == ("job-2", "SendReceipt", 42)
