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
