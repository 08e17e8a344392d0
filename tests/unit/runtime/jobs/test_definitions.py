"""Worker classes that cannot work are refused when the class is defined, naming the class and
the attribute; so are cron expressions that never fire."""

from __future__ import annotations

import math
from typing import Any

import pytest

from worker_runtime import Worker, WorkerDefinitionError
from worker_runtime.core.cron import CronError, check_expression
from worker_runtime.execution.lost import describe_loss


def _define(name: str, body: dict[str, Any]) -> type[Worker]:
    return type(name, (Worker,), {"__module__": __name__, **body})


def _perform(cls: type, *args: Any) -> None:
    return None


def _needs(cls: type, user_id: int) -> None:
    return None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"perform": _perform}, "perform must be a @classmethod"),
        ({"perform": staticmethod(_perform)}, "perform must be a @classmethod"),
        (
            {"perform": classmethod(_needs), "cron_schedule": "0 2 * * *"},
            r"cron worker's perform is called with no arguments, but perform\(user_id",
        ),
        (
            {"perform": classmethod(_perform), "cron_schedule": "0 2 30 2 *"},
            "'0 2 30 2 \\*' never fires",
        ),
        ({"perform": classmethod(_perform), "cron_overlap_timeout": 0}, "cron_overlap_timeout"),
        ({"perform": classmethod(_perform), "cron_overlap_timeout": -5}, "cron_overlap_timeout"),
        ({"perform": classmethod(_perform), "cron_overlap_timeout": 1.5}, "cron_overlap_timeout"),
        ({"perform": classmethod(_perform), "retry_backoff_max": math.nan}, "finite"),
        ({"perform": classmethod(_perform), "retry_backoff_max": math.inf}, "finite"),
        ({"perform": classmethod(_perform), "retry_backoff_max": True}, "retry_backoff_max"),
    ],
)
def test_a_worker_that_cannot_work_is_refused_at_definition(
    body: dict[str, Any], message: str
) -> None:
    with pytest.raises(WorkerDefinitionError, match=message) as info:
        _define("Broken", body)
    assert f"{__name__}.Broken" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_cron_worker_whose_perform_has_defaults_is_accepted() -> None:
    def perform(cls: type, limit: int = 10) -> None:
        return None

    worker = _define("Nightly", {"perform": classmethod(perform), "cron_schedule": "0 2 * * *"})
    assert worker.cron_schedule == "0 2 * * *"


@pytest.mark.parametrize("expr", ["0 2 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
def test_cron_expressions_that_never_fire_are_refused(expr: str) -> None:
    with pytest.raises(CronError, match="never fires"):
        check_expression(expr)


def test_february_29th_fires_and_is_accepted() -> None:
    assert check_expression("0 0 29 2 *") == "0 0 29 2 *"


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "Worker exited prematurely: signal 9 (SIGKILL) Job: 3.",
            "killed by SIGKILL: probably out of memory",
        ),
        ("Worker exited prematurely: signal 11 (SIGSEGV) Job: 0.", "died from SIGSEGV"),
        ("Worker exited prematurely: exitcode 3 Job: 1.", "exited with code 3"),
        ("something else", "was lost: something else"),
    ],
)
def test_a_lost_process_is_described_from_billiards_message(message: str, reason: str) -> None:
    assert reason in describe_loss(message)
