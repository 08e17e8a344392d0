"""The worker's liveness: which slots are alive, and the heartbeat file the probe reads
(`workerpool health --component worker`), touched only while every slot is and leases are
being renewed.

Must not kill or restart anything: the kubelet acts on a stale heartbeat, the supervisor on
an exit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from worker_runtime.process.children import Child
from worker_runtime.process.heartbeat import touch
from worker_runtime.process.slot_board import Board, SlotState

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 5.0
#: An idle, healthy slot completes a BRPOP every second (kombu's `brpop_timeout`).
FETCH_STALE = 10.0
#: A new slot may take this long to import, connect and complete its first fetch.
STARTUP_GRACE = 60.0


def slot_is_alive(state: SlotState, started: float, now: float) -> bool:
    """The liveness rule for one slot: running a job (its event loop is busy, not stuck), or
    a fetch completed within FETCH_STALE, or still starting."""
    if state.job is not None:
        return True
    if state.last_fetch > started:
        return now - state.last_fetch < FETCH_STALE
    return now - started < STARTUP_GRACE


class Heartbeat:
    """Touches the probe file every HEARTBEAT_INTERVAL while every slot is alive, and says
    once when it starts and stops withholding it."""

    def __init__(
        self, path: Path, board: Board, renewals_stale: Callable[[float], bool] | None = None
    ) -> None:
        self._path = path
        self._board = board
        self._renewals_stale = renewals_stale
        self._next = 0.0
        self._withheld = False

    def beat(self, slots: list[Child], now: float, *, draining: bool) -> None:
        if now < self._next:
            return
        self._next = now + HEARTBEAT_INTERVAL
        if draining:  # the probe must not kill a pod finishing its jobs
            touch(self._path)
            return
        stale = [
            slot.index + 1
            for slot in slots
            if slot.pid is None
            or not slot_is_alive(self._board.read(slot.index), slot.started, now)
        ]
        if self._renewals_stale is not None and self._renewals_stale(now):
            stale.append(0)  # 0: the duties process, whose leases lapse soon
        if not stale:
            touch(self._path)
            if self._withheld:
                log.info("every slot fetches again; heartbeat resumed")
                self._withheld = False
        elif not self._withheld:
            self._withheld = True
            log.warning(
                "slot(s) %s completed no fetch from Redis for %.0fs and run no job "
                "(0: the duties process renewed no lease lately); "
                "withholding the heartbeat so the liveness probe fails",
                ",".join(map(str, stale)),
                FETCH_STALE,
            )
