"""What kombu needs of a message before it can deliver it: anything less is kept as unrunnable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker_runtime.broker.intake import envelope_problem
from worker_runtime.core.messages import build_message
from worker_runtime.store.dead import RAW_LIMIT, unrunnable


def _envelope() -> dict[str, Any]:
    raw = build_message(task_name="t.Task", job_id="j", queue="default", args=[], kwargs={})
    envelope: dict[str, Any] = json.loads(raw)
    return envelope


def test_our_own_messages_have_no_problem() -> None:
    assert envelope_problem(_envelope()) is None


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda _e: 7, "a JSON int"),
        (lambda e: e.pop("properties") and e, "no 'properties' object"),
        (lambda e: e["properties"].pop("delivery_info") and e, "'properties.delivery_info'"),
        (lambda e: e["properties"].pop("delivery_tag") and e, "'properties.delivery_tag'"),
        (lambda e: {**e, "headers": [1]}, "'headers' is not an object"),
        (lambda e: {**e, "headers": {"task": 3}}, "'headers.task' is not a string"),
        (lambda e: {**e, "body": 5}, "'body' is not a string"),
        (lambda e: {**e, "body": "@@@"}, "not valid base64"),
    ],
)
def test_each_missing_piece_is_named(change: Any, problem: str) -> None:
    found = envelope_problem(change(_envelope()))
    assert found is not None
    assert problem in found


def test_an_unrunnable_record_keeps_the_header_id_and_caps_the_body() -> None:
    record = unrunnable(b"x" * (RAW_LIMIT + 1), "not JSON", "nowhere", {"id": "abc", "task": 1})
    assert record.id == "abc"
    assert record.task == "(not a job)"
    assert record.queue == "default"  # not a queue a worker reads: retried onto default
    assert record.raw is not None
    assert len(record.raw) == RAW_LIMIT
    assert record.raw_truncated
