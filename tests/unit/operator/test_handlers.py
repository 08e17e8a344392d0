"""The handlers: the only place errors become kopf's retry semantics, and state in kopf's memo."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import pytest
from workerpool_operator import handlers
from workerpool_operator.coalesce import Coalescer, Deferred
from workerpool_operator.errors import ApiRejected, ApiUnavailable
from workerpool_operator.metrics import PoolMetrics
from workerpool_operator.redisload import LoadReader

from tests.unit.operator.conftest import spec_of
from tests.unit.operator.fakes import FakeCluster


class FailingCluster(FakeCluster):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def get_pool(self, namespace: str, name: str) -> dict[str, Any] | None:
        del namespace, name  # every pool fails alike
        raise self.error


def memo_with(cluster: FakeCluster) -> kopf.Memo:
    memo = kopf.Memo()
    memo[handlers.MEMO_KEY] = handlers.State(
        cluster=cluster,  # type: ignore[arg-type]
        coalescer=Coalescer(),
        loads=LoadReader(),
        metrics=PoolMetrics(),
        deferred=Deferred(ThreadPoolExecutor(1)),
    )
    return memo


def reconcile_pool(memo: kopf.Memo) -> None:
    logger: Any = kopf.LocalObjectLogger(body=kopf.Body({}), settings=kopf.OperatorSettings())
    # kopf's decorator types the handler as its protocol with every kwarg; call it as kopf does.
    handler: Any = handlers.reconcile_pool
    handler(name="shop", namespace="apps", memo=memo, logger=logger)


@pytest.mark.parametrize(
    ("error", "kopf_error"),
    [
        (ApiUnavailable("Http500", "Deployment apps/x: HTTP 500"), kopf.TemporaryError),
        # 403 the same wherever it occurs: retried, the fix is in RBAC, not in the pool.
        (ApiRejected("Forbidden", "the operator may not access WorkerPool apps/shop"),
         kopf.TemporaryError),
        (ApiRejected("ApplyRejected", "WorkerPool apps/shop status was rejected"),
         kopf.PermanentError),
    ],
)  # fmt: skip
def test_api_errors_become_kopf_errors_with_their_retry_meaning(
    error: Exception, kopf_error: type[Exception]
) -> None:
    with pytest.raises(kopf_error, match=str(error)) as caught:
        reconcile_pool(memo_with(FailingCluster(error)))
    assert caught.value.__cause__ is error
    assert type(caught.value) is kopf_error


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Events the handlers post (kopf posts them only inside a running operator)."""
    posted: list[tuple[str, str]] = []

    def record(_body: object, *, reason: str, message: str) -> None:
        posted.append((reason, message))

    monkeypatch.setattr(kopf, "warn", record)
    monkeypatch.setattr(kopf, "info", record)
    return posted


def test_a_problem_only_a_spec_change_can_fix_is_permanent(events: list[tuple[str, str]]) -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of(timezone="Mars/Olympus"))
    with pytest.raises(kopf.PermanentError, match=r"spec\.timezone"):
        reconcile_pool(memo_with(cluster))
    assert [reason for reason, _ in events] == ["InvalidSpec"]


def test_a_problem_outside_the_pool_is_retried(events: list[tuple[str, str]]) -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of(flower={"credentialsSecret": "ops"}))
    with pytest.raises(kopf.TemporaryError) as caught:
        reconcile_pool(memo_with(cluster))
    assert caught.value.delay == handlers.RETRY_SECONDS
    assert [reason for reason, _ in events] == ["SecretNotFound"]


def test_before_start_up_the_handlers_ask_kopf_to_retry_soon() -> None:
    with pytest.raises(kopf.TemporaryError) as caught:
        reconcile_pool(kopf.Memo())
    assert caught.value.delay == 1


def test_child_watches_are_filtered_by_the_api_server() -> None:
    """Issue 24: the operator received every Deployment of the cluster and filtered them."""
    settings = kopf.OperatorSettings()
    handlers.watch_children_only(settings)
    selectors = settings.watching.label_selectors
    for resource in (
        kopf.Resource("apps", "v1", "deployments", kind="Deployment"),
        kopf.Resource("", "v1", "services", kind="Service"),
    ):
        assert selectors.collect(resource) == ["app.kubernetes.io/managed-by=workerpool-operator"]
    pools = kopf.Resource("workerpool.dev", "v1alpha1", "workerpools", kind="WorkerPool")
    assert selectors.collect(pools) == []  # every pool, whoever labelled it
    pods = kopf.Resource("", "v1", "pods", kind="Pod")
    assert selectors.collect(pods) == []


def retire_pool(memo: kopf.Memo) -> None:
    logger: Any = kopf.LocalObjectLogger(body=kopf.Body({}), settings=kopf.OperatorSettings())
    handler: Any = handlers.retire_pool
    handler(name="shop", namespace="apps", memo=memo, logger=logger)


def test_a_deleted_pool_keeps_its_finalizer_while_a_worker_pod_finishes() -> None:
    cluster = FakeCluster()
    cluster.add_pool(spec_of())
    cluster.pool["metadata"]["deletionTimestamp"] = "2999-01-01T00:00:00Z"
    pod = {"name": "shop-worker-1", "namespace": "apps", "labels": {
        "app.kubernetes.io/name": "workerpool", "app.kubernetes.io/instance": "shop",
        "app.kubernetes.io/component": "worker"}}  # fmt: skip
    cluster.put({"apiVersion": "v1", "kind": "Pod", "metadata": pod})
    memo = memo_with(cluster)
    with pytest.raises(kopf.TemporaryError, match="shop-worker-1") as raised:
        retire_pool(memo)
    assert raised.value.delay == handlers.TEARDOWN_POLL_SECONDS
    del cluster.objects[("v1", "Pod", "apps", "shop-worker-1")]
    retire_pool(memo)  # returns: kopf removes the finalizer, the rest goes with the pool


def test_a_teardown_the_operator_may_not_do_lets_the_pool_go() -> None:
    memo = memo_with(FailingCluster(ApiRejected("Forbidden", "may not list pods")))
    with pytest.raises(kopf.PermanentError, match="ordered teardown skipped"):
        retire_pool(memo)
