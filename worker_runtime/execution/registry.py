"""Discovering Worker classes in configured packages and registering their Celery tasks.

Owns discovery and start-up errors. Every failure names its culprit and stops start-up: a
package that does not exist, a module that fails to import (celery's `find_related_module`
tells "absent" from "broken" the same way), a duplicate task name, a bad cron expression or
queue. Nothing is skipped silently. Must not run jobs or schedule cron ticks.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import ClassVar

from celery import Celery

from worker_runtime import runtime
from worker_runtime.core.cron import CronError, check_expression
from worker_runtime.execution.attempt import make_task
from worker_runtime.jobs.worker import Worker, WorkerDefinitionError

log = logging.getLogger(__name__)


class WorkerDiscoveryError(RuntimeError):
    """Start-up cannot discover the configured workers; the message names the culprit."""


class WorkerRegistry:
    """Finds Worker subclasses and registers one Celery task and cron entry for each."""

    _workers: ClassVar[dict[str, type[Worker]]] = {}

    @classmethod
    def initialize(
        cls, packages: Iterable[str] | None = None, app: Celery | None = None
    ) -> dict[str, type[Worker]]:
        rt = runtime.current()
        names = tuple(packages if packages is not None else rt.settings.worker_packages)
        if not names:
            raise WorkerDiscoveryError(
                "no worker packages configured: set WORKER_PACKAGES (e.g. 'myapp.workers')"
            )
        modules = [module for name in names for module in _import_tree(name)]
        workers = discover(modules)
        for worker in workers.values():
            if worker.cron_schedule is not None:
                try:
                    check_expression(worker.cron_schedule, seconds=rt.settings.cron_seconds)
                except CronError as exc:
                    raise WorkerDiscoveryError(f"{worker.task_name}: cron_schedule {exc}") from None
        target = app or rt.app
        for worker in workers.values():
            make_task(target, worker)
            log.info(
                "registered worker %s (queue=%s, max_retries=%d%s)",
                worker.task_name,
                worker.queue,
                worker.max_retries,
                f", cron={worker.cron_schedule!r}" if worker.cron_schedule else "",
            )
        cls._workers = workers
        return dict(workers)

    @classmethod
    def workers(cls) -> dict[str, type[Worker]]:
        return dict(cls._workers)

    @classmethod
    def cron_workers(cls) -> list[type[Worker]]:
        return [w for w in cls._workers.values() if w.cron_schedule is not None]


def discover(modules: Iterable[ModuleType]) -> dict[str, type[Worker]]:
    """Task name -> concrete Worker class defined in `modules`; duplicate names are errors."""
    module_names = {module.__name__ for module in modules}
    found: dict[str, type[Worker]] = {}
    for worker in _subclasses(Worker):
        if worker.__module__ not in module_names or not worker.is_concrete():
            continue
        other = found.get(worker.task_name)
        if other is not None and other is not worker:
            raise WorkerDiscoveryError(
                f"duplicate task name {worker.task_name!r}: "
                f"{other.__module__}.{other.__qualname__} and "
                f"{worker.__module__}.{worker.__qualname__}; set task_name on one of them"
            )
        found[worker.task_name] = worker
    return found


def _subclasses(cls: type[Worker]) -> Iterator[type[Worker]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _import_tree(package: str) -> list[ModuleType]:
    root = _import(package, package)
    modules = [root]
    if hasattr(root, "__path__"):
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.", onerror=_raise):
            modules.append(_import(info.name, package))
    return modules


def _import(name: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except WorkerDefinitionError as exc:
        raise WorkerDiscoveryError(f"worker module {name!r}: {exc}") from exc
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            raise WorkerDiscoveryError(
                f"WORKER_PACKAGES names {package!r}, but {exc.name!r} is not importable "
                "(check the name and that it is installed)"
            ) from exc
        raise WorkerDiscoveryError(
            f"worker module {name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:
        raise WorkerDiscoveryError(
            f"worker module {name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def _raise(name: str) -> None:
    # walk_packages calls this when importing a sub-package fails; import it again to raise
    # the real error through _import.
    _import(name, name)
