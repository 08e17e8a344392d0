"""One job slot of a worker pod: a Celery worker whose consumer runs each job itself.

`workerpool worker --concurrency N` forks N of these (supervisor.py) after the worker modules
are imported, so slots share those pages with the supervisor (copy-on-write) and a replacement
starts in a fraction of a second. Each is a whole Celery worker with the solo pool: it fetches
one message (prefetch 1, strict queue order, late ack), runs the job inline and acks it, with no
pool process, pipe or pickling in between; that is what halves the CPU per job
(tests/benchmarks/PROFILE.md). What Celery's prefork pool did for
jobs, the slot and its supervisor now do:

- the slot writes the message it runs (id, attempt, delivery tag, queue, start and hard time
  limit) and each completed fetch on the slot board (slot_board.py); the supervisor reads it to
  kill a slot past its hard limit, renew leases, report load and judge liveness;
- `run` and `forked` are what a freshly forked process runs; the supervisor calls them;
- the soft time limit is a SIGALRM in the slot (time_limits.py, armed around `perform`);
- Flower's worker heartbeat: Celery sends it from the consumer's event loop, which a job blocks
  here, so while a job runs a thread sends it (`JobHeartbeat`);
- recycling: after `max_tasks` jobs, or once the slot's resident memory exceeds `max_memory_kib`,
  the slot shuts down warmly between jobs (Celery's own flag, checked before the next fetch) and
  the supervisor starts a fresh one.

Must not renew leases, dispatch scheduled jobs or touch the heartbeat: the supervisor does that
once per pod.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from time import monotonic
from typing import Any, ClassVar, NoReturn

from celery.concurrency.base import apply_target
from celery.concurrency.solo import TaskPool
from celery.utils.nodenames import default_nodename, host_format
from celery.utils.sysinfo import load_average
from celery.worker import state

from worker_runtime.broker.intake import fetches
from worker_runtime.process.slot_board import Board, Job
from worker_runtime.runtime import Runtime

log = logging.getLogger(__name__)

#: Celery's `--pool` value naming the pool below.
SLOT_POOL = "worker_runtime.process.slot:SlotPool"


@dataclass(frozen=True)
class SlotConfig:
    index: int
    board: Board
    queues: tuple[str, ...]
    loglevel: str
    #: Celery node name of this slot.
    hostname: str
    #: Worker-wide time limits in seconds (a job's own limits win); 0 for none.
    time_limit: float = 0.0
    soft_time_limit: float = 0.0
    max_tasks: int = 0
    max_memory_kib: int = 0


_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def resident_kib() -> int:
    """This process's resident memory now (Celery's max-memory-per-child compares the same)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE_KIB


class JobHeartbeat:
    """Celery's `worker-heartbeat` events for this slot while a job blocks its event loop.

    Celery sends them every 2 s from the loop, and Flower (celery.events.state) takes a node for
    offline two intervals after the last one, so any job over 4 s would turn the slot offline.
    A daemon thread sends them instead while a job runs, saying one job is active, over its own
    connection (a kombu producer must not be shared between threads).
    """

    def __init__(self, app: Any, hostname: str, interval: float = 2.0) -> None:
        self._app = app
        self._hostname = host_format(default_nodename(hostname))
        self._interval = interval
        self._running = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def job_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)
            self._thread.start()
        self._done.clear()
        self._running.set()

    def job_finished(self) -> None:
        self._running.clear()
        self._done.set()

    def _run(self) -> None:
        dispatcher = None
        while True:
            self._running.wait()
            while not self._done.wait(self._interval):
                try:
                    if dispatcher is None:
                        connection = self._app.connection_for_write()
                        dispatcher = self._app.events.Dispatcher(
                            connection, hostname=self._hostname, enabled=True, groups=["worker"]
                        )
                    dispatcher.send(
                        "worker-heartbeat",
                        freq=self._interval,
                        active=1,
                        processed=state.all_total_count[0],
                        loadavg=load_average(),
                        **state.SOFTWARE_INFO,
                    )
                except Exception as exc:  # informational only: Flower may show a gap
                    log.debug("job heartbeat not sent: %s", exc)
                    dispatcher = None


class SlotPool(TaskPool):  # type: ignore[misc]
    """Celery's solo pool, bracketing each job with its record on the slot board."""

    config: ClassVar[SlotConfig | None] = None
    heartbeat: ClassVar[JobHeartbeat | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_apply = self._apply
        self._done = 0

    def _apply(
        self,
        target: Any,
        args: Any = (),
        kwargs: Any = None,
        callback: Any = None,
        accept_callback: Any = None,
        timeout: float | None = None,
        correlation_id: str | None = None,
        **options: Any,
    ) -> Any:
        config = self.config
        if config is None:  # pragma: no cover - set by run_slot before Celery starts
            raise RuntimeError("SlotPool needs SlotPool.config")
        # The request whose message this is: Celery passes its bound `on_accepted`.
        request = getattr(accept_callback, "__self__", None)
        message = getattr(request, "message", None)
        info = getattr(request, "delivery_info", None) or {}
        config.board.begin(
            config.index,
            Job(
                started=monotonic(),
                hard_limit=float(timeout or config.time_limit or 0.0),
                attempt=int(getattr(request, "request_dict", {}).get("retries") or 0),
                id=str(correlation_id or getattr(request, "id", "")),
                delivery_tag=str(getattr(message, "delivery_tag", "") or ""),
                queue=str(info.get("routing_key") or ""),
            ),
        )
        if self.heartbeat is not None:
            self.heartbeat.job_started()
        try:
            return apply_target(
                target, args, kwargs, callback, accept_callback, timeout=timeout, **options
            )
        finally:
            if self.heartbeat is not None:
                self.heartbeat.job_finished()
            config.board.end(config.index)
            self._done += 1
            self._maybe_recycle(config)

    def _maybe_recycle(self, config: SlotConfig) -> None:
        why = None
        if config.max_tasks and self._done >= config.max_tasks:
            why = f"ran {self._done} job(s) (--max-tasks-per-child {config.max_tasks})"
        elif config.max_memory_kib and (rss := resident_kib()) > config.max_memory_kib:
            why = f"uses {rss} KiB (--max-memory-per-child {config.max_memory_kib})"
        if why is not None and state.should_stop is None:
            log.info("slot %d %s: exiting; a fresh one replaces it", config.index + 1, why)
            # Celery's warm-shutdown flag: the consumer loop stops before its next fetch.
            state.should_stop = 0


_PR_SET_PDEATHSIG = 1


def die_with(supervisor_pid: int) -> None:
    """SIGKILL this process when its supervisor dies, as the kernel does to a container's
    processes when its first one dies: nothing the supervisor tracked outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        os._exit(1)


def forked(supervisor_pid: int) -> None:
    """First steps of any process the supervisor forks: Python's default signal handling
    (not the supervisor's), its own session (a terminal's or a group's signal reaches the
    supervisor, which forwards it once), and death with the supervisor."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    die_with(supervisor_pid)


def run(rt: Runtime, config: SlotConfig, supervisor_pid: int) -> NoReturn:
    """In a process just forked by the supervisor: be slot `config.index` until Celery stops."""
    code = 1
    try:
        forked(supervisor_pid)
        SlotPool.config = config
        SlotPool.heartbeat = JobHeartbeat(rt.app, config.hostname)
        board, index = config.board, config.index
        fetches.sink = lambda when: board.fetched(index, when)
        fetches.hold_sink = lambda tag, job_id, attempt, queue: board.begin(
            # Held, not yet started: if the slot dies now, the supervisor requeues it at once
            # instead of after its lease. The pool's own record replaces this one.
            index,
            Job(monotonic(), 0.0, attempt, job_id, tag, queue),
        )
        fetches.idle_sink = lambda: board.end(index)
        rt.app.conf.update(
            worker_pool=SLOT_POOL,
            # Celery's own settings, read per job (time_limits.py) as its prefork pool did.
            task_time_limit=config.time_limit or None,
            task_soft_time_limit=config.soft_time_limit or None,
        )
        rt.app.worker_main(
            [
                "worker",
                "--concurrency=1",
                f"--queues={','.join(config.queues)}",
                f"--loglevel={config.loglevel}",
                f"--hostname={config.hostname}",
                "--optimization=fair",
                # Gossip is worker-to-worker chatter Flower does not need; it grows with pods.
                "--without-gossip",
            ]
        )
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        log.exception("slot %d failed", config.index + 1)
    finally:
        # Never back into the supervisor's loop, whose stack this process inherited.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
