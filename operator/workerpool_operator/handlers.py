"""Kopf wiring: which events trigger a reconcile pass, and what kopf should do with its outcome.

Thin on purpose: every handler calls the one idempotent `reconcile.reconcile` for a pool and
translates its outcome. This is the only module that raises kopf's errors, all through
`_kopf_error`: kopf.PermanentError for what only an edit of the pool can fix (`permanent`
problems and errors), kopf.TemporaryError otherwise (a 403 included, wherever it occurs: the
fix is in RBAC, outside the pool). Handler state (API client, coalescer) lives in kopf's
`memo`, set up by the startup handler; there are no module globals. Kopf traps handled here:
- status is written by the reconciler (server-side apply) and handlers return None, so kopf
  stores no results in status, and a status write triggers nothing (on.update ignores status);
- kopf's bookkeeping lives in `workerpool.dev/*` annotations, not in status (which the schema
  would prune anyway);
- child handlers are `on.event` only: they never patch the children (on.create/update would
  annotate them and bump their resourceVersion);
- the operator runs standalone (see cli.py): one replica, no peering to freeze.
Must not build objects or call the API directly.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import kopf

from workerpool_operator import names
from workerpool_operator.cluster import Cluster, Credentials
from workerpool_operator.coalesce import Coalescer, Deferred
from workerpool_operator.errors import ApiError, ApiUnavailable
from workerpool_operator.metrics import PoolMetrics, serve
from workerpool_operator.reconcile import Outcome, reconcile
from workerpool_operator.redisload import LoadReader
from workerpool_operator.teardown import retire

POOLS: Final = (names.GROUP, names.VERSION, names.PLURAL)
# Drift is repaired within this period even without a watch event (a deleted Secret, a pod's
# container status): `workerpool operator --resync-seconds` (see register_resync).
DEFAULT_RESYNC_SECONDS: Final = 10.0
# kopf's retry of a stalled create/update; the timer re-checks far more often anyway, so this
# mostly bounds how often the failure is logged.
RETRY_SECONDS: Final = 60.0
# How often a pool being deleted checks whether its workers are gone.
TEARDOWN_POLL_SECONDS: Final = 2.0
CHILD_LABELS: Final = {names.LABEL_MANAGED_BY: names.OPERATOR}
# The same filter applied by the API server to the child watches (issue 24): without it, the
# operator received every Deployment and Service of the cluster and dropped the foreign ones.
CHILD_SELECTOR: Final = ",".join(f"{key}={value}" for key, value in CHILD_LABELS.items())
CHILD_RESOURCES: Final = (("apps", "v1", "deployments"), ("v1", "services"))
# For passes triggered by a child: kopf's logger there would speak about the child.
_log = logging.getLogger(__name__)


MEMO_KEY: Final = "workerpool"
#: Set by `workerpool operator --metrics-port` (cli.py) in the memo kopf starts with.
METRICS_PORT_KEY: Final = "metrics_port"


@dataclass(frozen=True)
class State:
    """What every handler shares, kept in kopf's memo under MEMO_KEY."""

    cluster: Cluster
    coalescer: Coalescer
    loads: LoadReader
    metrics: PoolMetrics
    deferred: Deferred  # passes for child events, on kopf's own handler threads


@kopf.on.startup()
def configure(*, settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # settings.scanning is chosen by `workerpool operator` (cli.py), which knows the namespaces.
    settings.persistence.finalizer = f"{names.GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    watch_children_only(settings)
    objects_logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, _QuietRoutine) for f in objects_logger.filters):
        objects_logger.addFilter(_QuietRoutine())
    metrics = PoolMetrics()
    port = memo.get(METRICS_PORT_KEY)
    if isinstance(port, int) and port > 0:
        serve(metrics, port)
    memo[MEMO_KEY] = State(
        cluster=Cluster(lambda: login(settings)),
        coalescer=Coalescer(),
        loads=LoadReader(),
        metrics=metrics,
        deferred=Deferred(settings.execution.executor),
    )


@kopf.on.cleanup()
def stop_deferred_passes(*, memo: kopf.Memo, **_: Any) -> None:
    """Passes queued by child events do not outlive kopf (they would post Events to a closed
    event loop)."""
    state = memo.get(MEMO_KEY)
    if isinstance(state, State):
        state.deferred.close()


def watch_children_only(settings: kopf.OperatorSettings) -> None:
    """Ask the API server for the operator's children only (`labelSelector` on the list and
    the watch of Deployments and Services): the cost follows the pools, not the cluster."""
    for resource in CHILD_RESOURCES:
        settings.watching.label_selectors[resource] = CHILD_SELECTOR


def login(settings: kopf.OperatorSettings) -> Credentials:
    """The API server and credentials Kopf itself would use without a client library: the
    pod's service account if mounted, else $KUBECONFIG / ~/.kube/config (kopf's own readers;
    an exec or auth-provider plugin that needs a client library is not supported)."""
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise kopf.LoginError("no service account token and no kubeconfig to reach the API")
    return Credentials(info.server, info.as_ssl_context(), info.as_http_headers())


def _kopf_error(message: str, *, permanent: bool, delay: float = RETRY_SECONDS) -> Exception:
    """The one translation into kopf's retry semantics."""
    if permanent:
        return kopf.PermanentError(message)
    return kopf.TemporaryError(message, delay=delay)


def _report_scaling(outcome: Outcome, logger: kopf.Logger | logging.Logger) -> None:
    """The autoscaler's changes of the worker count, with the load behind them (an Event).
    Posted by the pass itself: a coalesced run returns only its last pass's outcome."""
    if outcome.scaled is None or outcome.pool is None:
        return
    body = kopf.Body(cast(kopf.RawBody, outcome.pool))
    meta = body["metadata"]
    logger.info(
        f"{meta['namespace']}/{meta['name']} {outcome.scaled.reason}: {outcome.scaled.message}"
    )
    kopf.info(body, reason=outcome.scaled.reason, message=outcome.scaled.message)


def _run(
    memo: kopf.Memo, namespace: str, name: str, logger: kopf.Logger | logging.Logger
) -> Outcome | None:
    """One coalesced pass; API errors that escape it become kopf errors."""
    state = memo.get(MEMO_KEY)
    if not isinstance(state, State):
        raise _kopf_error("operator not started yet", permanent=False, delay=1)
    cluster, loads = state.cluster, state.loads

    def one_pass() -> Outcome:
        outcome = reconcile(cluster, namespace, name, loads=loads)
        _report_scaling(outcome, logger)
        reading = outcome.reading
        state.metrics.update(
            namespace, name, outcome.status, reading.load if reading is not None else None
        )
        return outcome

    try:
        return state.coalescer.run((namespace, name), one_pass)
    except ApiUnavailable as error:
        raise _kopf_error(str(error), permanent=False, delay=error.delay) from error
    except ApiError as error:
        raise _kopf_error(str(error), permanent=error.permanent) from error


def _report(outcome: Outcome | None, logger: kopf.Logger) -> None:
    """Log and post an Event on the pool on transitions only: the timer runs every few seconds."""
    if outcome is None or outcome.status is None or outcome.pool is None:
        return
    body = kopf.Body(cast(kopf.RawBody, outcome.pool))
    for condition in outcome.status["conditions"]:
        if condition["type"] not in outcome.transitions or condition["status"] != "True":
            continue
        reason, message = condition["reason"], condition["message"]
        pool = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        if condition["type"] == "Stalled":
            logger.warning(f"{pool} Stalled ({reason}): {message}")
            kopf.warn(body, reason=reason, message=message)
        elif condition["type"] == "Ready":
            logger.info(f"{pool} Ready: {message}")
            kopf.info(body, reason="Ready", message=message)


class _QuietRoutine(logging.Filter):
    """Drop kopf's per-run success lines of the timer and child handlers (every resync per
    pool, and on every child status change); failures and transitions are still logged."""

    ROUTINE = frozenset({"Timer 'resync_pool' succeeded.", "Handler 'child_changed' succeeded."})

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.ROUTINE


@kopf.on.resume(*POOLS)
@kopf.on.create(*POOLS)
@kopf.on.update(*POOLS)
def reconcile_pool(
    *, name: str, namespace: str | None, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    assert namespace is not None  # the CRD is namespaced
    outcome = _run(memo, namespace, name, logger)
    _report(outcome, logger)
    if outcome is None or outcome.problem is None:
        return
    raise _kopf_error(outcome.problem.message, permanent=outcome.problem.permanent)


@kopf.on.delete(*POOLS)
def retire_pool(
    *, name: str, namespace: str | None, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Workers first, then the rest (teardown.py): Kopf keeps the finalizer, and with it every
    child, until this handler succeeds."""
    assert namespace is not None
    state = memo.get(MEMO_KEY)
    if not isinstance(state, State):
        raise _kopf_error("operator not started yet", permanent=False, delay=1)
    try:
        waiting = retire(state.cluster, namespace, name, datetime.now(UTC))
    except ApiUnavailable as error:
        raise _kopf_error(str(error), permanent=False, delay=error.delay) from error
    except ApiError as error:
        # Permanent: Kopf then releases the finalizer, and the pool goes as it did before the
        # ordered teardown, rather than staying undeletable (a 403 retried forever).
        raise _kopf_error(f"ordered teardown skipped: {error}", permanent=True) from error
    if waiting is not None:
        raise _kopf_error(waiting, permanent=False, delay=TEARDOWN_POLL_SECONDS)
    logger.info(f"{namespace}/{name}: workers stopped; beat, Flower and Redis go with the pool")


def resync_pool(
    *, name: str, namespace: str | None, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    assert namespace is not None
    try:
        _report(_run(memo, namespace, name, logger), logger)
    except (kopf.TemporaryError, kopf.PermanentError) as error:
        # The pass reported what it could in the status; the next tick retries, no Event.
        logger.info(f"resync postponed: {error}")


def register_resync(interval: float = DEFAULT_RESYNC_SECONDS) -> None:
    """Register the periodic pass of every pool, once, before kopf runs: kopf fixes a timer's
    interval when it is registered, so the interval cannot come through the memo."""
    kopf.timer(*POOLS, interval=interval, initial_delay=interval)(resync_pool)


def _controller(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        api_group = str(ref.get("apiVersion", "")).split("/")[0]
        if ref.get("controller") and ref.get("kind") == names.KIND and api_group == names.GROUP:
            return str(ref["name"])
    return None


# `labels` as well as the server-side selector: the handler must never see another child.
@kopf.on.event(*CHILD_RESOURCES[0], labels=CHILD_LABELS)
@kopf.on.event(*CHILD_RESOURCES[1], labels=CHILD_LABELS)
async def child_changed(
    *, body: kopf.Body, type: str | None, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A child was edited, deleted or changed status: repair it and refresh the status now
    instead of at the next tick. `type` None is the initial listing (resume covers it).

    Async, and it only queues the pass (at most one waiting per pool, coalesce.Deferred) on
    kopf's handler threads: a sync handler would keep kopf's worker for the child, and the
    child's whole body, waiting for a free thread. With 200 pools that was a backlog of ~1,000
    children's bodies after every burst of events, most of the operator's RSS growth."""
    pool = _controller(body)
    state = memo.get(MEMO_KEY)
    if type is None or pool is None or namespace is None or not isinstance(state, State):
        return  # before start-up: resume and the timer catch up
    # Kopf's context (its Event queue for kopf.info/warn) travels with the pass to the thread.
    context = contextvars.copy_context()
    state.deferred.request(
        (namespace, pool), functools.partial(context.run, _child_pass, memo, namespace, pool)
    )


def _child_pass(memo: kopf.Memo, namespace: str, pool: str) -> None:
    try:
        _report(_run(memo, namespace, pool, _log), _log)
    except (kopf.TemporaryError, kopf.PermanentError) as error:
        # Problems are on the pool's status already; the timer retries.
        _log.info(f"{namespace}/{pool}: child event pass postponed: {error}")
    except Exception:  # on an executor thread: nobody else would see it
        _log.exception(f"{namespace}/{pool}: child event pass failed")
