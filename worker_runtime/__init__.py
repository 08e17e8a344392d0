"""worker_runtime: Sidekiq-style background jobs on Celery and Redis.

    from worker_runtime import Worker, Logger

    class SendReceipt(Worker):
        queue = "critical"

        @classmethod
        def perform(cls, order_id: int) -> None: ...

    SendReceipt.perform_async(order_id=42)

Importing this package connects to nothing; the Celery app and the Redis client are built on
first use from CELERY_BROKER_URL / CELERY_RESULT_BACKEND.
"""

from worker_runtime.core.arguments import JobArgumentError
from worker_runtime.core.queues import QUEUES, UnknownQueueError
from worker_runtime.execution.registry import WorkerDiscoveryError, WorkerRegistry
from worker_runtime.jobs.logger import Logger
from worker_runtime.jobs.worker import Worker, WorkerDefinitionError
from worker_runtime.runtime import configure, current

__all__ = [
    "QUEUES",
    "JobArgumentError",
    "Logger",
    "UnknownQueueError",
    "Worker",
    "WorkerDefinitionError",
    "WorkerDiscoveryError",
    "WorkerRegistry",
    "configure",
    "current",
]
