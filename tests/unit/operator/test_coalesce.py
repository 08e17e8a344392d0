"""The coalescer: one pass per pool at a time, concurrent requests folded into one re-run."""

from __future__ import annotations

import threading

import pytest
from workerpool_operator.coalesce import Coalescer


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
