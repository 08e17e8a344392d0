"""At most one reconcile pass per WorkerPool at a time; requests arriving meanwhile coalesce.

Kopf runs sync handlers in a thread pool, and one pool is reconciled from several triggers
(create/update/resume, the timer, events of its Deployments and Services). Running them in
parallel would only race; queueing them would repeat identical work. Instead a trigger that
finds a pass running marks the key dirty and returns; the running pass then goes once more,
re-reading the live object. No Kubernetes here; must not import kopf or kubernetes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
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
