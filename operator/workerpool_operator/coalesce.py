"""At most one reconcile pass per WorkerPool at a time; requests arriving meanwhile coalesce.

Kopf runs sync handlers in a thread pool, and one pool is reconciled from several triggers
(create/update/resume, the timer, events of its Deployments and Services). Running them in
parallel would only race; queueing them would repeat identical work. Instead a trigger that
finds a pass running marks the key dirty and returns; the running pass then goes once more,
re-reading the live object. `Deferred` runs passes later on an executor, at most one waiting
per pool, for triggers that must not wait for a thread (child events). No Kubernetes here; must
not import kopf or kubernetes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")


class Coalescer:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._running: set[Hashable] = set()
        self._again: set[Hashable] = set()

    def run(self, key: Hashable, fn: Callable[[], T]) -> T | None:
        """Run `fn` for `key`, or return None at once if a pass for `key` is running (it will
        repeat itself once afterwards)."""
        with self._guard:
            if key in self._running:
                self._again.add(key)
                return None
            self._running.add(key)
        try:
            while True:
                result = fn()
                with self._guard:
                    if key not in self._again:
                        self._running.discard(key)
                        return result
                    self._again.discard(key)
        except BaseException:
            # The periodic timer catches up with anything a failed pass left undone.
            with self._guard:
                self._running.discard(key)
                self._again.discard(key)
            raise


class Deferred:
    """Work requested now and run later on an executor, at most one waiting per key.

    A burst of requests for one key (the events of a pool's children) costs one run, and the
    requester returns at once, holding nothing: Kopf's per-object worker of a child event would
    otherwise keep that event's whole body in memory until a handler thread is free."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._guard = threading.Lock()
        self._waiting: set[Hashable] = set()
        self._closed = False

    def request(self, key: Hashable, fn: Callable[[], object]) -> bool:
        """Queue `fn` for `key` unless a run for `key` is already waiting; True if queued.
        `fn` must not raise: nobody waits for its outcome."""
        with self._guard:
            if self._closed or key in self._waiting:
                return False
            self._waiting.add(key)
        self._executor.submit(self._run, key, fn)
        return True

    def close(self) -> None:
        """Drop what is waiting and refuse new requests (the operator is stopping)."""
        with self._guard:
            self._closed = True

    def _run(self, key: Hashable, fn: Callable[[], object]) -> None:
        with self._guard:
            # From now on a request needs a run after this one: this one may read too early.
            self._waiting.discard(key)
            if self._closed:
                return
        fn()
