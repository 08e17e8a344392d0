"""The pure parts of the job slots: the shared board, the liveness rule, node names, loss
reasons and time limits (processes and Redis: tests/integration/runtime/test_slots.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from worker_runtime.execution.lost import describe_exit, describe_loss
from worker_runtime.execution.time_limits import (
    HARD_LIMIT_REASON,
    hard_limit_reason,
    limits,
    soft_limit,
)
from worker_runtime.process.children import slot_hostname
from worker_runtime.process.liveness import FETCH_STALE, STARTUP_GRACE, slot_is_alive
from worker_runtime.process.slot_board import Board, Job, SlotState

JOB = Job(
    started=12.5,
    hard_limit=30.0,
    attempt=2,
    id="0b8f6b6e-2f0c-4a55-9d4c-3b1f0f3f9a10",
    delivery_tag="5f1c1d7e-1111-2222-3333-444455556666",
    queue="critical",
)


@pytest.fixture
def board() -> Iterator[Board]:
    created = Board(3)
    yield created
    created.close()


def test_a_slots_job_and_fetch_are_read_back_by_its_supervisor(board: Board) -> None:
    assert board.read(1) == SlotState(0.0, None)
    board.fetched(1, 99.0)
    board.begin(1, JOB)
    assert board.read(1) == SlotState(99.0, JOB)
    assert board.read(0) == SlotState(0.0, None)
    assert board.read(2) == SlotState(0.0, None)
    board.end(1)
    assert board.read(1) == SlotState(99.0, None)
    board.clear(1)
    assert board.read(1) == SlotState(0.0, None)


def test_what_a_forked_slot_writes_its_supervisor_reads(board: Board) -> None:
    pid = os.fork()
    if pid == 0:  # the slot: write and leave at once (no pytest teardown in the child)
        board.begin(2, JOB)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert board.read(2).job == JOB


def test_a_slot_number_off_the_board_is_an_error(board: Board) -> None:
    with pytest.raises(IndexError, match="slot 3 is not on a board of 3"):
        board.read(3)


@pytest.mark.parametrize(
    ("state", "started", "now", "alive"),
    [
        (SlotState(100.0, None), 50.0, 100.0 + FETCH_STALE - 1, True),
        (SlotState(100.0, None), 50.0, 100.0 + FETCH_STALE + 1, False),
        # A job blocks the slot's event loop, however long it runs.
        (SlotState(100.0, JOB), 50.0, 100.0 + 10 * FETCH_STALE, True),
        # Not fetched yet since its start: alive only while it may still be starting.
        (SlotState(0.0, None), 50.0, 50.0 + STARTUP_GRACE - 1, True),
        (SlotState(0.0, None), 50.0, 50.0 + STARTUP_GRACE + 1, False),
        # A fetch of the slot it replaced does not count for the new one.
        (SlotState(40.0, None), 50.0, 50.0 + STARTUP_GRACE + 1, False),
    ],
)
def test_a_slot_is_alive_while_it_fetches_runs_a_job_or_starts(
    state: SlotState, started: float, now: float, alive: bool
) -> None:
    assert slot_is_alive(state, started, now) is alive


@pytest.mark.parametrize(
    ("given", "index", "name"),
    [(None, 0, "slot-1@%h"), ("pod@node-1", 1, "pod-2@node-1"), ("solo", 0, "solo-1@%h")],
)
def test_every_slot_is_its_own_node(given: str | None, index: int, name: str) -> None:
    assert slot_hostname(given, index) == name


@pytest.mark.parametrize(
    ("returncode", "reason"),
    [
        (-signal.SIGKILL, "killed by SIGKILL: probably out of memory"),
        (-signal.SIGSEGV, "died from SIGSEGV"),
        (3, "exited with code 3 while running it"),
    ],
)
def test_a_dead_slot_is_described_as_a_dead_pool_process_was(returncode: int, reason: str) -> None:
    assert reason in describe_exit(returncode)
    billiard = (
        f"Worker exited prematurely: signal {-returncode} (X)."
        if returncode < 0
        else f"Worker exited prematurely: exitcode {returncode}."
    )
    assert describe_loss(billiard) == describe_exit(returncode)


def test_the_hard_limit_reason_is_recognisable_and_names_the_limit() -> None:
    reason = hard_limit_reason(1.5)
    assert reason.startswith(HARD_LIMIT_REASON)
    assert "1.5s" in reason
    assert "SIGKILL" not in reason


Limits = tuple[float | None, float | None]


def _task(header: object, task_limits: Limits, conf: Limits) -> object:
    return SimpleNamespace(
        request=SimpleNamespace(timelimit=header),
        time_limit=task_limits[0],
        soft_time_limit=task_limits[1],
        app=SimpleNamespace(
            conf=SimpleNamespace(task_time_limit=conf[0], task_soft_time_limit=conf[1])
        ),
    )


@pytest.mark.parametrize(
    ("header", "task_limits", "conf", "expected"),
    [
        (None, (None, None), (None, None), (0.0, 0.0)),
        (None, (None, None), (30, 10), (30.0, 10.0)),
        (None, (20, None), (30, 10), (20.0, 10.0)),
        ([5, 2], (20, 8), (30, 10), (5.0, 2.0)),
        ([None, None], (None, 8), (30, None), (30.0, 8.0)),
    ],
)
def test_a_jobs_own_time_limits_win_over_the_workers(
    header: object, task_limits: Limits, conf: Limits, expected: tuple[float, float]
) -> None:
    assert limits(_task(header, task_limits, conf)) == expected


def test_the_soft_limit_raises_in_the_block_and_is_disarmed_after_it() -> None:
    with pytest.raises(SoftTimeLimitExceeded), soft_limit(0.05):
        time.sleep(5)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    before = signal.getsignal(signal.SIGALRM)
    with soft_limit(60):
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before
