"""What Flower shows wrong for job slots, put right.

- Pool Grow/Shrink/Autoscale: a job slot is a one-job Celery worker, and a pod's slot count is
  fixed at start (`--concurrency`; more capacity is more pods, the operator's job), so
  Flower's buttons could only fail (`'SlotPool' object has no attribute 'grow'`). Their API
  routes answer 400 with that reason, and the worker page hides the controls (slot_pool.html,
  included by our navbar, which Flower's pages share).
- `inspect`: a slot answers control commands only between jobs, so while every slot is busy
  each of Flower's inspect rounds logs one warning per method (4 every few seconds). A logging
  filter keeps one line per `QUIET_SECONDS` saying why, and where running jobs are shown.

Must not change Flower's other controls or pages.
"""

from __future__ import annotations

import logging
import time

import tornado.web
from flower.views import BaseHandler

#: Flower's pool-resizing API routes (flower/urls.py).
RESIZE_ROUTES = (
    r"/api/worker/pool/grow/(.+)",
    r"/api/worker/pool/shrink/(.+)",
    r"/api/worker/pool/autoscale/(.+)",
)
REASON = (
    "job slots are fixed per worker pod: change --concurrency, or the WorkerPool's replicas "
    "(the operator scales pods)"
)
QUIET_SECONDS = 300.0


class FixedSlots(BaseHandler):  # type: ignore[misc]
    """Answers Flower's resize calls with the reason they cannot work."""

    @tornado.web.authenticated
    def post(self, workername: str) -> None:
        self.set_status(400)
        self.write(f"Cannot resize {workername}: {REASON}")


class InspectNoise(logging.Filter):
    """One line per `quiet` seconds instead of a warning per inspect method per round."""

    def __init__(self, quiet: float = QUIET_SECONDS) -> None:
        super().__init__()
        self._quiet = quiet
        self._last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Inspect method"):
            return True
        now = time.monotonic()
        if now - self._last < self._quiet:
            return False
        self._last = now
        record.msg = (
            "workers did not answer inspect: a job slot answers only between jobs, so a busy "
            "pool is silent (running jobs are on the Busy page); said once per %.0fs"
        )
        record.args = (self._quiet,)
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def install(handlers: list[object]) -> None:
    """Replace Flower's resize routes in `handlers` (flower.urls.handlers) and quiet inspect."""
    for i, entry in enumerate(handlers):
        pattern = entry[0] if isinstance(entry, tuple) else None
        if pattern in RESIZE_ROUTES:
            handlers[i] = (pattern, FixedSlots)
    inspector = logging.getLogger("flower.inspector")
    if not any(isinstance(f, InspectNoise) for f in inspector.filters):
        inspector.addFilter(InspectNoise())
