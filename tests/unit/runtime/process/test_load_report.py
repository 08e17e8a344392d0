"""What a worker reports about its own load and which messages it leases, as the duties
process computes both from the slot board the slots write."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from worker_runtime.process.duties import board_load, held_tags
from worker_runtime.process.slot_board import Board, Job, SlotState

JOB = Job(started=1.0, hard_limit=0.0, attempt=1, id="job-1", delivery_tag="tag-1", queue="default")


@pytest.fixture
def board() -> Iterator[Board]:
    created = Board(4)
    yield created
    created.close()


def states(board: Board) -> list[SlotState]:
    return [board.read(i) for i in range(board.slots)]


def test_each_busy_slot_is_one_held_and_running_job_of_its_queue(board: Board) -> None:
    board.begin(0, JOB)
    board.begin(1, replace(JOB, id="job-2", delivery_tag="tag-2"))
    board.begin(3, replace(JOB, id="job-3", delivery_tag="tag-3", queue="critical"))
    assert board_load(states(board)) == {
        "default": {"reserved": 2, "running": 2},
        "critical": {"reserved": 1, "running": 1},
    }
    assert held_tags(states(board)) == ["tag-1", "tag-2", "tag-3"]


def test_an_idle_pod_reports_nothing_held_and_leases_nothing(board: Board) -> None:
    board.fetched(0, 5.0)
    board.begin(1, JOB)
    board.end(1)
    assert board_load(states(board)) == {}
    assert held_tags(states(board)) == []


def test_a_job_without_a_queue_or_tag_is_counted_but_not_leased(board: Board) -> None:
    board.begin(2, replace(JOB, queue="", delivery_tag=""))
    assert board_load(states(board)) == {"unknown": {"reserved": 1, "running": 1}}
    assert held_tags(states(board)) == []
