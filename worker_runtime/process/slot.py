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
  here, so while a job runs a thread sends it (job_heartbeat.py);
- recycling: after `max_tasks` jobs, or once the slot's resident memory exceeds `max_memory_kib`,
  the slot shuts down warmly between jobs (Celery's own flag, checked before the next fetch) and
  the supervisor starts a fresh one;
- signals: after each job the slot puts back the handlers the job found (a library that set
  SIGTERM to SIG_IGN must not make the slot deaf to the next warm shutdown), and stops before
  its next fetch if the supervisor's stop flag went up meanwhile (a SIGTERM the job ignored);
  SIGHUP is logged and ignored, where Celery would `execv` the whole command inside the slot.

Must not renew leases, dispatch scheduled jobs or touch the heartbeat: the supervisor does that
once per pod.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from dataclasses import dataclass
from time import monotonic
from types import FrameType
from typing import Any, ClassVar, NoReturn

import celery.apps.worker
from celery.concurrency.base import apply_target
from celery.concurrency.solo import TaskPool
from celery.worker import state

from worker_runtime.broker.intake import fetches
from worker_runtime.process.children import die_with_parent
from worker_runtime.process.job_heartbeat import JobHeartbeat
from worker_runtime.process.slot_board import Board, Flag, Job
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
    #: Whether this slot says what every slot would say (Celery's banner, the root warning,
    #: "Connected", "mingle"): only the first start of slot 1 does, so N slots print it once.
    talkative: bool = True
    #: Raised by the supervisor at a warm shutdown; read after each job.
    stopping: Flag | None = None


#: Celery's start-up lines that are the same for every slot of a pod.
_SAME_FOR_EVERY_SLOT = ("celery.worker.consumer.connection", "celery.worker.consumer.mingle")


def quiet_start(config: SlotConfig) -> list[str]:
    """Silence what this slot would repeat after slot 1; Celery's global options to add."""
    if config.talkative:
        return []
    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", category=SecurityWarning)
    for name in _SAME_FOR_EVERY_SLOT:
        logging.getLogger(name).setLevel(logging.WARNING)
    return ["--quiet"]  # no banner


#: Dispositions a job may change and the slot puts back after it.
_JOB_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)


_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def resident_kib() -> int:
    """This process's resident memory now (Celery's max-memory-per-child compares the same)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE_KIB


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
        handlers = {signum: signal.getsignal(signum) for signum in _JOB_SIGNALS}
        try:
            return apply_target(
                target, args, kwargs, callback, accept_callback, timeout=timeout, **options
            )
        finally:
            if self.heartbeat is not None:
                self.heartbeat.job_finished()
            config.board.end(config.index)
            self._done += 1
            _restore(handlers, config.index)
            self._maybe_recycle(config)

    def grow(self, n: int = 1) -> None:
        # Celery's `pool_grow`/`pool_shrink` controls (Flower's buttons) land here: say why.
        raise NotImplementedError(
            "a job slot runs one job; a pod's slots are fixed by --concurrency, and more "
            "capacity is more pods (the WorkerPool's replicas)"
        )

    def shrink(self, n: int = 1) -> None:
        self.grow(n)

    def _maybe_recycle(self, config: SlotConfig) -> None:
        why = None
        if config.stopping is not None and config.stopping.is_set():
            why = "missed its worker's warm shutdown (its job ignored SIGTERM)"
        elif config.max_tasks and self._done >= config.max_tasks:
            why = f"ran {self._done} job(s) (--max-tasks-per-child {config.max_tasks})"
        elif config.max_memory_kib and (rss := resident_kib()) > config.max_memory_kib:
            why = f"uses {rss} KiB (--max-memory-per-child {config.max_memory_kib})"
        if why is not None and state.should_stop is None:
            log.info("slot %d %s: exiting", config.index + 1, why)
            # Celery's warm-shutdown flag: the consumer loop stops before its next fetch.
            state.should_stop = 0


def _restore(handlers: dict[signal.Signals, Any], index: int) -> None:
    for signum, handler in handlers.items():
        if signal.getsignal(signum) is not handler:
            log.warning(
                "slot %d: the job changed the %s handler; restoring the slot's",
                index + 1,
                signum.name,
            )
            signal.signal(signum, handler)


def _ignore_hup(worker: Any, sig: str = "SIGHUP") -> None:  # noqa: ARG001 - Celery's signature
    """Stands in for Celery's SIGHUP handler, which re-executes the worker's command line (here
    the whole supervisor, inside a slot); the supervisor owns reloads, and it ignores SIGHUP."""
    signal.signal(signal.SIGHUP, _log_hup)


def _log_hup(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    log.warning("slot got SIGHUP: ignored (stop the worker with SIGTERM)")


def die_with(supervisor_pid: int) -> None:
    """SIGKILL this process when its supervisor dies, as the kernel does to a container's
    processes when its first one dies: nothing the supervisor tracked outlives it. Linux only;
    on macOS (no prctl) a slot outlives a SIGKILLed supervisor until its next fetch fails."""
    die_with_parent(signal.SIGKILL)
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        os._exit(1)


def forked(supervisor_pid: int) -> None:
    """First steps of any process the supervisor forks: Python's default signal handling
    (not the supervisor's), its own session (a terminal's or a group's signal reaches the
    supervisor, which forwards it once), and death with the supervisor."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, _log_hup)
    os.setsid()
    die_with(supervisor_pid)


def run(rt: Runtime, config: SlotConfig, supervisor_pid: int) -> NoReturn:
    """In a process just forked by the supervisor: be slot `config.index` until Celery stops."""
    code = 1
    try:
        forked(supervisor_pid)
        # Celery has no setting for its SIGHUP handler; it looks the installer up by name.
        celery.apps.worker.install_worker_restart_handler = _ignore_hup
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
                *quiet_start(config),
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
