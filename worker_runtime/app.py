"""The Celery application factory: queues, strict priority and delivery guarantees.

Builds the app from `Settings`; nothing connects here (Celery connects lazily). Must not
register tasks: the registry does that, so importing this module has no side effects.
"""

from __future__ import annotations

from typing import Final

from celery import Celery
from kombu.entity import Exchange, Queue

from worker_runtime.core.queues import DEFAULT, QUEUES
from worker_runtime.core.settings import Settings
from worker_runtime.store.results import RESULT_BACKEND

#: Every Redis connection of the runtime gives up on a silent peer instead of waiting forever:
#: a Redis pod deleted or stopped leaves no one to answer or reset the connection, and a
#: blocked worker would then hang its warm shutdown until the pod's grace period ends. Above
#: kombu's 1 s BRPOP and the dispatcher's sub-second pub/sub waits, the longest blocking calls.
REDIS_TIMEOUTS: Final = {"socket_timeout": 10.0, "socket_connect_timeout": 5.0}


def create_app(settings: Settings) -> Celery:
    # Current app, so `AsyncResult(job_id)` without an app argument reads our backend, as
    # the README's examples do.
    app = Celery("workerpool", set_as_current=True)
    app.conf.update(
        broker_url=settings.broker_url,
        # kombu's Redis transport (one reused client per channel, transport.py) and Celery's
        # consumer, keeping unrunnable messages in the dead set instead of stopping the worker
        # or dropping them (intake.py). Named as "module:Class" strings that kombu and Celery
        # resolve when a worker starts, so this module does not import intake (which needs the
        # runtime, which needs this module).
        broker_transport="worker_runtime.broker.intake:Transport",
        worker_consumer="worker_runtime.broker.intake:Consumer",
        result_backend=settings.result_backend,
        task_queues=[
            Queue(q, Exchange(q, type="direct"), routing_key=q)  # type: ignore[no-untyped-call]
            for q in QUEUES
        ],
        task_default_queue=DEFAULT,
        # Strict priority: kombu BRPOPs the queue lists in this fixed order, so a worker takes
        # a `default` job only when `critical` is empty (celery docs, "Redis Message
        # Priorities"). Per-message `priority` on Redis is only emulated; it is not used.
        broker_transport_options={
            "queue_order_strategy": "priority",
            # A lease, renewed by live workers every third of it (lease.py): a dead worker's
            # jobs come back this long after its last renewal, a live worker's never.
            "visibility_timeout": settings.visibility_timeout,
            # kombu sweeps expired unacked messages only every interval * throttle seconds
            # (10 * 10 by default) whatever the timeout; sweep every 10 s (or faster for a
            # shorter lease) so recovery takes at most the lease plus 10 s.
            "unacked_restore_interval": min(10, settings.visibility_timeout),
            "unacked_restore_throttle": 1,
            **REDIS_TIMEOUTS,
        },
        result_backend_transport_options={"visibility_timeout": settings.visibility_timeout},
        # Each process reserves one job at a time, so nothing low-priority sits prefetched in a
        # worker while a critical job waits in Redis.
        worker_prefetch_multiplier=1,
        # Ack after the job ends; a worker killed mid-job leaves the message unacked and Redis
        # redelivers it (no lost jobs). Jobs must therefore be idempotent, as in Sidekiq.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        result_extended=True,
        result_expires=settings.result_expires,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Events feed Flower's task list and rates.
        worker_send_task_events=True,
        timezone=settings.timezone,
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        redis_socket_connect_timeout=REDIS_TIMEOUTS["socket_connect_timeout"],
        worker_hijack_root_logger=False,
    )
    # Celery's Redis backend, one round trip per state written (results.py). Through
    # `backend_cls`, not the `result_backend` setting: Celery reads CELERY_RESULT_BACKEND from
    # the environment in preference to that setting, and deployments set it.
    app.backend_cls = f"{RESULT_BACKEND}+{settings.result_backend}"
    return app
