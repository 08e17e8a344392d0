"""`workerpool worker --concurrency N`: a small supervisor of N job slots (slot.py).

It imports the worker modules, then forks the slots (and one process for the pod's duties), so
they share its pages copy-on-write. It starts no thread: forking a threaded process can copy a
lock some thread held (stdout's, a connection pool's) into a child that then hangs on it.

Each slot is its own Celery worker (solo pool: its consumer runs the job), so a pod runs N
jobs at once, as `concurrency` always meant, without one consumer process feeding a pool
through pipes (tests/benchmarks/PROFILE.md). The supervisor owns what the prefork pool and the
worker's main process did for the pod, reading what each slot does from the slot board
(slot_board.py):

- hard time limits: a slot whose job outlives its limit is killed; the reason ("time limit
  exceeded") is recorded first, so the job's next delivery fails that attempt (lost.py,
  execution.py) and retries or dead-sets it;
- a slot that dies is started again; the message it held is requeued at once (as Celery's
  `task_reject_on_worker_lost` did) after its loss is recorded, so it counts as a lost attempt;
  a slot that dies before ever fetching is restarted with a growing delay;
- recycling: a slot that exits by itself with code 0 (max tasks or memory reached) is replaced;
- warm shutdown: SIGTERM or SIGINT is forwarded once, each slot finishes its job and exits;
  a second signal (or SIGQUIT) is cold: slots are killed and their jobs requeued, exit code 1;
  SIGHUP is logged and ignored (no reload: a new configuration is a new pod);
- process groups: a slot is killed (hard limit, cold shutdown) with its whole group, so what its
  job started dies too, and what is left of a slot's group when it exits goes; orphans are
  reaped (a subreaper on Linux, PID 1 in the image); a failed fork (EAGAIN under a PID limit) is
  logged and retried later, as for a slot that dies before it fetches;
- once per pod, not per slot, in one forked "duties" process (duties.py), restarted if it
  dies; in the supervisor itself, the liveness heartbeat (liveness.py).

Forks and reaps through children.py. Must not run jobs, nor reach a slot but by signals and
the board.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from time import monotonic, sleep
from types import FrameType

from worker_runtime.execution.lost import describe_exit, record_loss
from worker_runtime.execution.time_limits import hard_limit_reason
from worker_runtime.process import duties
from worker_runtime.process import slot as job_slot
from worker_runtime.process.children import (
    Child,
    become_subreaper,
    exit_code,
    fork,
    kill_group,
    kill_leftovers,
    reap_orphans,
    send,
    share_before_forking,
    slot_hostname,
)
from worker_runtime.process.heartbeat import heartbeat_path, touch
from worker_runtime.process.liveness import Heartbeat
from worker_runtime.process.slot_board import Board, Flag, Job
from worker_runtime.runtime import Runtime

log = logging.getLogger(__name__)

#: How often the supervisor looks at its slots: the precision of hard time limits.
TICK = 0.1
#: Longest wait before starting again a slot that died before it ever fetched.
MAX_RESTART_DELAY = 30.0
COLD_REASON = "its worker was stopped by a cold shutdown while running it"


@dataclass(frozen=True)
class SlotOptions:
    """What every slot of this pod is started with."""

    queues: tuple[str, ...]
    loglevel: str
    #: Celery node name, `name@host`; slot i is `name-i@host` (default `slot-i@%h`).
    hostname: str | None = None
    time_limit: float = 0.0
    soft_time_limit: float = 0.0
    max_tasks_per_child: int = 0
    max_memory_per_child: int = 0


class Supervisor:
    def __init__(self, rt: Runtime, concurrency: int, options: SlotOptions) -> None:
        self._rt = rt
        self._options = options
        self._board = Board(concurrency)
        self._stop_flag = Flag()
        self._duties = duties.DutiesProcess(rt, self._board, options.queues)
        self._slots = [Child(i) for i in range(concurrency)]
        self._signals: list[int] = []
        self._stopping = False
        self._cold = False
        self._consuming = False
        self._heartbeat_file = heartbeat_path(rt.settings.state_dir, "worker")
        self._heartbeat = Heartbeat(self._heartbeat_file, self._board, self._duties.renewals_stale)
        self._duties_warned = float("-inf")

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        become_subreaper()
        share_before_forking(self._rt)
        touch(self._heartbeat_file)
        log.info("starting %d job slot(s)", len(self._slots))
        try:
            while not self._stopping or any(s.pid is not None for s in self._slots):
                self._handle_signals()
                now = monotonic()
                self._watch_duties()
                for slot in self._slots:
                    self._watch(slot, now)
                self._reap_orphans()
                self._announce()
                self._heartbeat.beat(self._slots, now, draining=self._stopping)
                sleep(TICK)
        finally:
            self._duties.stop()
            self._board.close()
            self._stop_flag.close()
        if self._cold:
            return 1  # Celery's exit code for a cold shutdown
        # A slot still starting when SIGTERM came had no handler for it yet: clean too.
        last = [s.last_exit for s in self._slots if s.last_exit is not None]
        return 0 if all(code in (0, -signal.SIGTERM) for code in last) else 1

    # Slots.

    def _start(self, slot: Child) -> None:
        opts = self._options
        config = job_slot.SlotConfig(
            index=slot.index,
            board=self._board,
            queues=opts.queues,
            loglevel=opts.loglevel,
            hostname=slot_hostname(opts.hostname, slot.index),
            time_limit=opts.time_limit,
            soft_time_limit=opts.soft_time_limit,
            max_tasks=opts.max_tasks_per_child,
            max_memory_kib=opts.max_memory_per_child,
            talkative=slot.index == 0 and slot.last_exit is None,
            stopping=self._stop_flag,
        )
        self._board.clear(slot.index)
        slot.started = monotonic()
        slot.killed_because = None
        supervisor = os.getpid()
        try:
            pid = fork()
        except OSError as exc:  # EAGAIN under a PID limit, ENOMEM
            self._back_off(slot, slot.started, f"could not be forked ({exc})")
            return
        if pid == 0:
            job_slot.run(self._rt, config, supervisor)
        slot.pid = pid

    def _watch_duties(self) -> None:
        try:
            self._duties.watch(restart=not self._cold)
        except OSError as exc:  # its fork failed; tried again next tick, logged now and then
            if (now := monotonic()) >= self._duties_warned + MAX_RESTART_DELAY:
                self._duties_warned = now
                log.error("the duties process could not be forked (%s); retrying", exc)

    def _reap_orphans(self) -> None:
        reap_orphans({p for p in (self._duties.pid, *(s.pid for s in self._slots)) if p})

    def _watch(self, slot: Child, now: float) -> None:
        if slot.pid is None:
            if not self._stopping and now >= slot.next_start:
                self._start(slot)
            return
        code = exit_code(slot.pid)
        if code is not None:
            self._exited(slot, code, now)
            return
        job = self._board.read(slot.index).job
        if (
            job is not None
            and job.hard_limit > 0
            and now - job.started > job.hard_limit
            and slot.killed_because is None
        ):
            reason = hard_limit_reason(job.hard_limit)
            log.error("slot %d: job %s %s", slot.index + 1, job.id, reason)
            self._kill(slot, reason, only_during=job)

    def _kill(self, slot: Child, reason: str, only_during: Job | None = None) -> None:
        if slot.pid is None or slot.killed_because is not None:
            return
        job = self._board.read(slot.index).job
        if only_during is not None and job != only_during:
            return  # that job ended meanwhile: the slot runs another, or none
        slot.killed_because = reason
        if job is not None:
            # Before the kill: the job must not come back before its loss is on record.
            self._record(job.id, job.attempt, reason)
        # The whole group: processes the job started must not outlive it beside its retry.
        kill_group(slot.pid, signal.SIGKILL)

    def _exited(self, slot: Child, code: int, now: float) -> None:
        state = self._board.read(slot.index)
        assert slot.pid is not None
        # What its jobs started and left running (a recycled or crashed slot's group).
        kill_leftovers(slot.pid)
        slot.pid = None
        slot.last_exit = code
        fetched = state.last_fetch > slot.started
        if state.job is not None:
            if slot.killed_because is None:
                self._record(state.job.id, state.job.attempt, describe_exit(code))
            self._requeue(state.job.delivery_tag)
        self._board.clear(slot.index)
        if self._stopping:
            log.info("slot %d stopped (exit code %d)", slot.index + 1, code)
            return
        # A slot that worked (recycled, killed by or for its job) is replaced at once; one that
        # never fetched waits longer each time, so a broken start cannot spin.
        if fetched or slot.killed_because is not None:
            slot.failures = 0
            slot.next_start = now
            if code != 0:
                log.warning("slot %d exited with code %d; starting it again", slot.index + 1, code)
            return
        self._back_off(slot, now, f"exited with code {code} before it consumed")

    def _back_off(self, slot: Child, now: float, what: str) -> None:
        slot.failures += 1
        delay = min(MAX_RESTART_DELAY, 2.0 ** (slot.failures - 1))
        slot.next_start = now + delay
        log.error("slot %d %s; starting it again in %.0fs", slot.index + 1, what, delay)

    def _record(self, job_id: str, attempt: int, reason: str) -> None:
        try:
            record_loss(job_id, attempt, reason)
        except Exception as exc:  # Redis away: the redelivery counts it as a lost worker
            log.warning("could not record why job %s stopped (%s): %s", job_id, reason, exc)

    def _requeue(self, tag: str) -> None:
        """Put a dead slot's message back on its queue now, as Celery's requeue of a lost
        pool process did, instead of after its lease (kombu's own restore, same bytes)."""
        if not tag:
            return
        try:
            with self._rt.app.connection_for_write() as connection:
                # One try: this loop also forwards signals and keeps the heartbeat.
                connection.ensure_connection(max_retries=1)
                connection.default_channel.qos.restore_by_tag(tag, leftmost=True)
        except Exception as exc:
            log.warning("could not requeue %s now; its lease brings it back: %s", tag, exc)

    # Signals and shutdown.

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGHUP:
                log.warning("SIGHUP: ignored, nothing is reloaded (SIGTERM stops the worker)")
            elif signum == signal.SIGQUIT or self._stopping:
                self._cold_shutdown(signal.Signals(signum).name)
            else:
                self._warm_shutdown(signal.Signals(signum).name)

    def _warm_shutdown(self, name: str) -> None:
        self._stopping = True
        self._stop_flag.set()  # for a slot whose job ignores SIGTERM (slot.py)
        log.info("%s: warm shutdown, running jobs finish (again for a cold one)", name)
        for slot in self._slots:
            if slot.pid is not None:
                send(slot.pid, signal.SIGTERM)

    def _cold_shutdown(self, name: str) -> None:
        if self._cold:
            return
        self._stopping = self._cold = True
        log.warning("%s: cold shutdown, running jobs are stopped and requeued", name)
        for slot in self._slots:
            self._kill(slot, COLD_REASON)

    def _announce(self) -> None:
        if self._consuming or self._stopping:
            return
        states = [self._board.read(slot.index) for slot in self._slots]
        if all(
            slot.pid is not None and state.last_fetch > slot.started
            for slot, state in zip(self._slots, states, strict=True)
        ):
            self._consuming = True
            log.info(
                "all %d slot(s) consuming %s", len(self._slots), ",".join(self._options.queues)
            )
