"""The pod's duties process: what a worker does once per pod, not once per slot.

Forked by the supervisor (and forked again if it dies): the schedule dispatcher (one Redis
poll per interval), lease renewal of every message a slot holds (a slot blocked in a job
cannot renew its own; this process can), the load report summed over slots and the busy report
(what each slot runs, for the Busy page), all read from the slot board. The renewer is watched
(issue 20): the process exits when any of its threads dies, and the supervisor kills it (to
start it again) when its leases were last renewed two renewal intervals ago, a lease's third
before another worker may take them back (a frozen process, a stuck thread). Must not run jobs
or hold messages of its own.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from time import monotonic, sleep
from typing import NoReturn

from worker_runtime.process import slot as job_slot
from worker_runtime.process.busy_report import BusyReporter
from worker_runtime.process.children import exit_code, fork, send
from worker_runtime.process.lease import LeaseKeeper, RenewalClock
from worker_runtime.process.load_report import LoadReporter
from worker_runtime.process.slot_board import Board, SlotState
from worker_runtime.runtime import Runtime
from worker_runtime.scheduling.dispatcher import Dispatcher
from worker_runtime.store.schedule_set import ScheduleSet

log = logging.getLogger(__name__)

#: The duties process holds no job, so at shutdown it gets this long to stop its threads before
#: it is killed: a Redis that vanished (its pod deleted with the pool) can leave a thread
#: blocked on a socket, and the pod must not wait out its whole grace period for that.
STOP_TIMEOUT = 5.0


def held_tags(states: list[SlotState]) -> list[str]:
    """Delivery tags of the messages live slots hold, for lease renewal."""
    return [s.job.delivery_tag for s in states if s.job is not None and s.job.delivery_tag]


def board_load(states: list[SlotState]) -> dict[str, dict[str, int]]:
    """This pod's load report (load_report.py): one held, running job per busy slot."""
    found: dict[str, dict[str, int]] = {}
    for state in states:
        if state.job is not None:
            entry = found.setdefault(state.job.queue or "unknown", {"reserved": 0, "running": 0})
            entry["reserved"] += 1
            entry["running"] += 1
    return found


def renewal_interval(rt: Runtime) -> float:
    """Seconds between lease renewals: a third of the lease."""
    return rt.settings.visibility_timeout / 3


def run(
    rt: Runtime, board: Board, supervisor: int, queues: tuple[str, ...], renewals: RenewalClock
) -> NoReturn:
    """In a forked process: dispatcher, leases, load and busy reports until SIGTERM, or until
    one of their threads dies."""
    code = 1
    try:
        job_slot.forked(supervisor)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        slots = range(board.slots)

        def states() -> list[SlotState]:
            return [board.read(i) for i in slots]

        leases = LeaseKeeper(
            rt.redis, renewal_interval(rt), lambda: held_tags(states()), renewed=renewals
        )
        load = LoadReporter(rt.redis, read=lambda: board_load(states()))
        dispatcher = Dispatcher(ScheduleSet(rt.redis, rt.keys), rt.settings.dispatch_interval)
        running = BusyReporter(rt.redis, rt.keys, states, queues, supervisor)
        leases.start()
        load.start()
        dispatcher.start()
        running.start()
        threads: dict[str, Callable[[], bool]] = {
            "lease renewal": leases.alive,
            "load report": load.alive,
            "dispatcher": dispatcher.alive,
            "busy report": running.alive,
        }
        while not stop.wait(0.5):
            dead = [name for name, alive in threads.items() if not alive()]
            if dead:
                # Its exception is in the log above; a fresh process starts them all again.
                log.error("the pod's duties process: the %s thread died; exiting", dead[0])
                sys.exit(1)
        running.stop()
        dispatcher.stop()
        leases.stop()
        load.stop()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("the pod's duties process failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class DutiesProcess:
    """The supervisor's handle on the duties process: fork it, fork it again if it died,
    stop it at shutdown."""

    def __init__(self, rt: Runtime, board: Board, queues: tuple[str, ...]) -> None:
        self._rt = rt
        self._board = board
        self._queues = queues
        self.pid: int | None = None
        #: Last successful renewal, written by the duties process (shared memory).
        self.renewals = RenewalClock()
        #: Renewals this old mean the renewer has stopped: leases lapse a third of one later.
        self.stale_after = 2 * renewal_interval(rt)

    def renewals_stale(self, now: float) -> bool:
        return self.pid is not None and now - self.renewals.last() > self.stale_after

    def watch(self, *, restart: bool) -> None:
        if self.pid is not None:
            code = exit_code(self.pid)
            if code is None:
                if self.renewals_stale(monotonic()):
                    log.error(
                        "the pod's duties process renewed no lease for %.0fs; killing it",
                        monotonic() - self.renewals.last(),
                    )
                    send(self.pid, signal.SIGKILL)
                return
            self.pid = None
            log.warning("the pod's duties process exited with code %d; starting it again", code)
        if not restart:
            return
        supervisor = os.getpid()
        self.renewals.mark(monotonic())  # its grace to renew for the first time
        pid = fork()
        if pid == 0:
            run(self._rt, self._board, supervisor, self._queues, self.renewals)
        self.pid = pid
        log.info("the pod's duties process started (pid %d)", pid)

    def stop(self) -> None:
        pid = self.pid
        if pid is None:
            return
        send(pid, signal.SIGTERM)
        deadline = monotonic() + STOP_TIMEOUT
        while exit_code(pid) is None:
            if monotonic() > deadline:
                log.warning(
                    "the pod's duties process did not stop in %gs; killing it", STOP_TIMEOUT
                )
                send(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            sleep(0.1)
        self.pid = None
