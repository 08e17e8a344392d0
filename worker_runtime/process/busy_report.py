"""Publishing what this pod's slots run, for the Busy page (store/busy.py), from the duties
process.

A daemon thread reads the slot board every `poll` seconds (a few memory reads) and writes the
pod's report to Redis only when the set of running jobs changed, or when the last write is a
third of its lifetime old, so a job appears within `poll` seconds of its start and an idle pod
costs one write per `ttl / 3`. The slots themselves write nothing: the drain path stays as it
was. A per-job write in the slot was the alternative; it would add a round trip per job.

Must not touch messages or leases; failures to publish are logged and retried, never fatal.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from time import monotonic, time

import redis

from worker_runtime.core.keys import Keys
from worker_runtime.process.slot_board import SlotState
from worker_runtime.store import busy

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
#: A report lapses this long after its last write: a killed pod leaves the page in ttl seconds.
TTL_SECONDS = 15.0
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def package_version() -> str:
    try:
        return version("workerpool")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def tree_rss_kib(root: int) -> int:
    """Resident memory of `root` and its children (the supervisor, its slots and duties)."""
    total = 0
    pids = [root]
    try:
        with open(f"/proc/{root}/task/{root}/children") as children:
            pids += [int(pid) for pid in children.read().split()]
    except OSError:
        pass
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * _PAGE_KIB
        except (OSError, IndexError, ValueError):
            continue  # exited between the two reads
    return total


class BusyReporter:
    """A daemon thread publishing this pod's running jobs on change."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        read: Callable[[], list[SlotState]],
        queues: tuple[str, ...],
        supervisor: int,
        *,
        poll: float = POLL_SECONDS,
        ttl: float = TTL_SECONDS,
        pod: str | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._read = read
        self._queues = queues
        self._supervisor = supervisor
        self._poll = poll
        self._ttl = ttl
        self._pod = pod or socket.gethostname()
        self._version = package_version()
        # Delivery tag -> (task, args): read once per job from kombu's unacked hash.
        self._described: dict[str, tuple[str, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workerpool-busy", daemon=True)

    def start(self) -> BusyReporter:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self._poll + 1)
        try:
            busy.withdraw(self._client, self._keys, self._pod)
        except redis.RedisError as exc:
            log.debug("busy report not withdrawn (it lapses on its own): %s", exc)

    def _run(self) -> None:
        seen: tuple[tuple[int, str], ...] | None = None
        written = 0.0
        while not self._stop.is_set():
            states = self._read()
            current = tuple(
                (slot, state.job.id) for slot, state in enumerate(states) if state.job is not None
            )
            if current != seen or monotonic() - written > self._ttl / 3:
                try:
                    self._publish(states)
                    seen, written = current, monotonic()
                except redis.RedisError as exc:
                    log.warning("busy report failed, retrying: %s", exc)
                    self._stop.wait(1.0)
            self._stop.wait(self._poll)

    def _publish(self, states: list[SlotState]) -> None:
        now_wall, now_mono = time(), monotonic()
        held = [s.job for s in states if s.job is not None]
        tags = [job.delivery_tag for job in held if job.delivery_tag not in self._described]
        self._described.update(busy.describe(self._client, tags))
        live = {job.delivery_tag for job in held}
        self._described = {t: d for t, d in self._described.items() if t in live}
        jobs = []
        for slot, state in enumerate(states):
            job = state.job
            if job is None:
                continue
            task, args = self._described.get(job.delivery_tag, ("?", ""))
            jobs.append(
                busy.RunningJob(
                    slot=slot + 1,
                    id=job.id,
                    task=task,
                    args=args,
                    queue=job.queue,
                    attempt=job.attempt,
                    started_at=now_wall - (now_mono - job.started),
                )
            )
        report = busy.PodReport(
            pod=self._pod,
            slots=len(states),
            queues=self._queues,
            version=self._version,
            rss_kib=tree_rss_kib(self._supervisor),
            updated=now_wall,
            jobs=tuple(jobs),
        )
        busy.publish(self._client, self._keys, report, self._ttl)
