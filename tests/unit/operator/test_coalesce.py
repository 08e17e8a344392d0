"""The coalescer: one pass per pool at a time, concurrent requests folded into one re-run;
deferred passes: at most one waiting per pool."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import pytest
from workerpool_operator.coalesce import Coalescer, Deferred


class HeldExecutor(Executor):
    """Runs nothing until told to: what was submitted waits, as on a busy thread pool."""

    def __init__(self) -> None:
        self.queued: list[Callable[[], Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.queued.append(lambda: fn(*args, **kwargs))
        return Future()

    def run_all(self) -> None:
        queued, self.queued = self.queued, []
        for job in queued:
            job()


def test_a_request_during_a_pass_makes_that_pass_run_once_more() -> None:
    coalescer = Coalescer()
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def slow() -> int:
        runs.append(len(runs))
        if len(runs) == 1:
            started.set()
            release.wait(5)
        return len(runs)

    results: list[int | None] = []
    worker = threading.Thread(target=lambda: results.append(coalescer.run("shop", slow)))
    worker.start()
    assert started.wait(5)
    assert coalescer.run("shop", slow) is None  # folded into the running pass
    assert coalescer.run("shop", slow) is None  # ...and folded again, not queued twice
    release.set()
    worker.join(5)
    assert results == [2]
    assert len(runs) == 2


def test_different_pools_do_not_wait_for_each_other() -> None:
    coalescer = Coalescer()
    assert coalescer.run("a", lambda: coalescer.run("b", lambda: "inner")) == "inner"


def test_a_failed_pass_frees_the_pool() -> None:
    coalescer = Coalescer()

    def boom() -> None:
        raise RuntimeError("api down")

    with pytest.raises(RuntimeError):
        coalescer.run("shop", boom)
    assert coalescer.run("shop", lambda: "ok") == "ok"


def test_requests_while_a_deferred_pass_waits_are_folded_into_it() -> None:
    executor, runs = HeldExecutor(), []
    deferred = Deferred(executor)
    assert deferred.request("shop", lambda: runs.append("shop"))
    assert not deferred.request("shop", lambda: runs.append("again"))  # one waiting already
    assert deferred.request("cart", lambda: runs.append("cart"))  # other pools do not wait
    executor.run_all()
    assert runs == ["shop", "cart"]


def test_a_request_after_the_deferred_pass_started_queues_another() -> None:
    executor, runs = HeldExecutor(), []
    deferred = Deferred(executor)

    def pass_that_sees_a_new_event() -> None:
        runs.append("first")
        # The pass may have read the pool before this event: the event needs its own pass.
        assert deferred.request("shop", lambda: runs.append("second"))

    deferred.request("shop", pass_that_sees_a_new_event)
    executor.run_all()
    executor.run_all()
    assert runs == ["first", "second"]


def test_a_closed_deferral_runs_and_accepts_nothing_more() -> None:
    executor, runs = HeldExecutor(), []
    deferred = Deferred(executor)
    deferred.request("shop", lambda: runs.append("waiting"))
    deferred.close()
    assert not deferred.request("cart", lambda: runs.append("new"))
    executor.run_all()
    assert runs == []
