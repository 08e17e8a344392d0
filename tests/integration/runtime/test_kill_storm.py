"""Nothing lost under a kill storm (issue 20): a producer enqueues a job every 10 ms while
whole workers are SIGKILLed, single slots (or the duties process) are SIGKILLed, and a worker
is frozen with SIGSTOP and then killed; in the end every job has a run record.

What used to lose jobs: kombu's BRPOP removed the message from Redis before the consumer
recorded it in `unacked`, so a process killed in between, or frozen with a BRPOP pending
(Redis still hands it the next message), took the message with it. Duplicates are allowed
here (a job killed after it ran but before its ack runs again: at-least-once); losses are not.
tests/benchmarks/kill_storm.py runs the long storm and counts both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

import pytest

from tests.controlplane.waiting import wait_for
from tests.integration.runtime.conftest import Proc, Spawn, ran
from tests.integration.runtime.jobs.recording import Storm
from worker_runtime.runtime import Runtime

pytestmark = pytest.mark.integration

#: Short leases, so a killed worker's held jobs come back within seconds.
QUICK = {"WORKERPOOL_VISIBILITY_TIMEOUT": "2"}
ROUNDS = 3


def family(pid: int) -> list[int]:
    """A supervisor and its children (slots, duties): each has its own session, so a group
    signal would miss them."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *map(int, children)]


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


class Producer(threading.Thread):
    """One Storm job every 10 ms until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sent = 0
        self.halt = threading.Event()
        self.paused = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.01):
            if not self.paused.is_set():
                Storm.perform_async(n=self.sent)
                self.sent += 1


def _done(rt: Runtime) -> set[int]:
    return {int(str(run["n"])) for run in ran(rt.redis, "storm")}


def test_no_job_is_lost_while_workers_and_slots_are_killed(rt: Runtime, spawn: Spawn) -> None:
    steady = spawn("worker", "--concurrency=2", extra_env=QUICK)
    victim: Proc = spawn("worker", "--concurrency=2", extra_env=QUICK)
    producer = Producer()
    producer.start()

    def progress(jobs: int) -> None:
        target = producer.sent + jobs
        wait_for(lambda: producer.sent >= target, timeout=30, interval=0.01, message="the producer")

    try:
        for _ in range(ROUNDS):
            progress(20)
            # One slot or the duties process of the steady worker: its supervisor requeues.
            children = family(steady.popen.pid)[1:]
            assert children, steady.output()[-2000:]
            signal_all(children[-1:], signal.SIGKILL)
            progress(20)
            # A whole worker: supervisor first, its children follow it (PR_SET_PDEATHSIG).
            victim.signal(signal.SIGKILL)
            victim.popen.wait(timeout=30)
            victim = spawn("worker", "--concurrency=2", extra_env=QUICK)
            progress(20)
            # Frozen while idle (waiting on Redis) as jobs keep arriving, then killed: what
            # Redis handed it must survive. Both workers are frozen, so each job that arrives
            # meanwhile is handed to a frozen slot; the steady one then thaws.
            producer.paused.set()
            wait_for(
                lambda: _done(rt) >= set(range(producer.sent)),
                timeout=60,
                message=lambda: (
                    "the workers to catch up with the producer; missing "
                    f"{sorted(set(range(producer.sent)) - _done(rt))[:20]}"
                ),
            )
            frozen, thawed = family(victim.popen.pid), family(steady.popen.pid)
            signal_all(frozen + thawed, signal.SIGSTOP)
            producer.paused.clear()
            progress(30)
            signal_all(frozen, signal.SIGKILL)
            signal_all(thawed, signal.SIGCONT)
            victim.popen.wait(timeout=30)
            victim = spawn("worker", "--concurrency=2", extra_env=QUICK)
    finally:
        producer.halt.set()
        producer.join(timeout=10)

    sent = producer.sent
    wait_for(
        lambda: _done(rt) >= set(range(sent)),
        timeout=90,
        message=lambda: (
            f"every job to run; missing {sorted(set(range(sent)) - _done(rt))[:20]} "
            f"(queued {rt.redis.llen('default')}, unacked {rt.redis.hlen('unacked')}, "
            f"dead {rt.redis.zcard('workerpool:dead')})"
        ),
    )
    runs = [int(str(run["n"])) for run in ran(rt.redis, "storm")]
    print(f"{sent} jobs, {len(runs) - len(set(runs))} ran twice (killed before their ack)")
