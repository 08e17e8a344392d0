"""The operator's RBAC is sufficient and least-privilege, on a real API server with RBAC on.

Two proofs. The table below asks the authorizer (`kubectl auth can-i --as=<the
ServiceAccount>`) about every request the operator makes (derived from its code: handlers.py,
reconcile.py, cluster.py, and Kopf) and about requests it must not be able to make. Then the
operator itself runs with nothing but its ServiceAccount's token, started with the exact
arguments of the installed Deployment, and must reconcile the samples without a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane.harness import ControlPlane
from tests.controlplane.waiting import wait_for
from tests.integration.bundle.bundle import (
    KOPF_NAMESPACED_REFUSALS,
    MANIFESTS,
    NAMESPACED_OVERLAY,
    OPERATOR_NAME,
    OPERATOR_NAMESPACE,
    SAMPLES,
    LocalOperator,
    install_crd,
    kustomize,
    refusals,
    to_yaml,
)

pytestmark = pytest.mark.integration

OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_NAME}"
POOLS = "workerpools.workerpool.dev"

# (verb, resource, subresource): every request the operator makes in a watched namespace.
NAMESPACED_NEEDS = [
    ("get", POOLS, ""),
    ("list", POOLS, ""),
    ("watch", POOLS, ""),
    ("patch", POOLS, ""),  # Kopf's annotations (and finalizer)
    ("patch", POOLS, "status"),  # the reconciler's server-side apply of the status
    ("update", POOLS, "finalizers"),  # blockOwnerDeletion on children's ownerReferences
    *[
        (verb, resource, "")
        for resource in ("deployments.apps", "services")
        for verb in ("get", "list", "watch", "create", "patch", "delete")
    ],
    ("get", "secrets", ""),
    ("create", "secrets", ""),
    ("delete", "secrets", ""),
    ("get", "configmaps", ""),
    ("get", "persistentvolumeclaims", ""),
    ("create", "persistentvolumeclaims", ""),
    ("patch", "persistentvolumeclaims", ""),
    *[(verb, "poddisruptionbudgets.policy", "") for verb in ("get", "create", "patch", "delete")],
    ("create", "events", ""),
    ("list", "pods", ""),  # container statuses of a component that is not ready
    ("patch", "pods", ""),  # worker pods' deletion cost (autoscale.py)
]
# Watched cluster-wide with --all-namespaces.
CLUSTER_WIDE_NEEDS = [
    ("list", POOLS),
    ("watch", POOLS),
    ("list", "deployments.apps"),
    ("watch", "deployments.apps"),
    ("list", "services"),
    ("watch", "services"),
]
# Cluster-scoped: Kopf notices the CRD being (re)installed.
CLUSTER_SCOPED_NEEDS = [
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
]
# Requests the operator never makes, so it must not be allowed to.
NAMESPACED_FORBIDDEN = [
    ("list", "secrets", ""),  # would expose every Secret of the cluster
    ("watch", "secrets", ""),
    ("update", "secrets", ""),
    ("patch", "secrets", ""),
    ("update", "deployments.apps", ""),  # server-side apply is `patch`
    ("delete", "persistentvolumeclaims", ""),  # Redis data outlives the operator's edits
    ("create", POOLS, ""),
    ("delete", POOLS, ""),
    ("update", POOLS, "status"),
    ("create", "pods", ""),
    ("get", "pods", ""),
    ("watch", "pods", ""),
    ("create", "pods", "exec"),
    ("patch", "configmaps", ""),
    ("create", "serviceaccounts", "token"),
    ("create", "roles.rbac.authorization.k8s.io", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", ""),
    ("*", "*", ""),
]
CLUSTER_FORBIDDEN = [
    ("delete", "namespaces"),
    ("list", "namespaces"),  # Kopf needs it only for namespace globs, not --all-namespaces
    ("get", "nodes"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
    ("*", "*"),
]


def can_i(
    plane: ControlPlane, user: str, verb: str, resource: str, *scope: str, subresource: str = ""
) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={user}", *scope]
    if subresource:
        args.append(f"--subresource={subresource}")
    answer = plane.kubectl_run(*args, check=False)
    # A misspelt or unserved resource is answered "no" with a warning: not an answer.
    assert answer.stdout.strip() in ("yes", "no"), answer.stdout + answer.stderr
    assert "Warning" not in answer.stderr, answer.stderr
    return answer.stdout.strip() == "yes"


def wait_for_rbac(plane: ControlPlane, user: str, *scope: str) -> None:
    """New bindings reach the authorizer's cache within moments; wait for them."""
    wait_for(
        lambda: can_i(plane, user, "get", POOLS, *scope),
        timeout=30,
        interval=0.1,
        message=f"RBAC of {user} to take effect",
    )


def apply(plane: ControlPlane, objects: list[dict[str, Any]]) -> None:
    plane.kubectl_run("apply", "--server-side", "-f", "-", input=to_yaml(objects))


# -- the authorizer's answers, cluster-wide install -----------------------------------------


@pytest.fixture(scope="module")
def cluster_rbac(
    control_plane: ControlPlane,
    # Requested for their effect: the CRD and the operator's namespace exist first.
    installed_crd: str,
    operator_namespace: str,
) -> Iterator[str]:
    """The base's ServiceAccount, ClusterRole and ClusterRoleBinding, created for real."""
    del installed_crd, operator_namespace  # requested for their effect: both must exist first
    objects = [
        o
        for o in kustomize(control_plane, MANIFESTS)
        if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    ]
    apply(control_plane, objects)
    wait_for_rbac(control_plane, OPERATOR_USER, "-n", "default")
    yield OPERATOR_USER
    cluster_scoped = [o for o in objects if o["kind"] != "ServiceAccount"]
    for obj in cluster_scoped:
        control_plane.kubectl_run(
            "delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found"
        )


@pytest.mark.parametrize(("verb", "resource", "subresource"), NAMESPACED_NEEDS)
def test_the_cluster_wide_operator_may_do_what_it_needs_in_any_namespace(
    control_plane: ControlPlane, cluster_rbac: str, verb: str, resource: str, subresource: str
) -> None:
    for namespace in ("default", "team-a"):
        assert can_i(
            control_plane, cluster_rbac, verb, resource, "-n", namespace, subresource=subresource
        )


@pytest.mark.parametrize(("verb", "resource"), CLUSTER_WIDE_NEEDS)
def test_the_cluster_wide_operator_may_watch_every_namespace(
    control_plane: ControlPlane, cluster_rbac: str, verb: str, resource: str
) -> None:
    assert can_i(control_plane, cluster_rbac, verb, resource, "--all-namespaces")


@pytest.mark.parametrize(("verb", "resource"), CLUSTER_SCOPED_NEEDS)
def test_the_cluster_wide_operator_may_watch_the_crds(
    control_plane: ControlPlane, cluster_rbac: str, verb: str, resource: str
) -> None:
    assert can_i(control_plane, cluster_rbac, verb, resource, "--all-namespaces")


@pytest.mark.parametrize(("verb", "resource", "subresource"), NAMESPACED_FORBIDDEN)
def test_the_cluster_wide_operator_may_not_do_more_in_a_namespace(
    control_plane: ControlPlane, cluster_rbac: str, verb: str, resource: str, subresource: str
) -> None:
    assert not can_i(
        control_plane, cluster_rbac, verb, resource, "-n", "default", subresource=subresource
    )


@pytest.mark.parametrize(("verb", "resource"), CLUSTER_FORBIDDEN)
def test_the_cluster_wide_operator_may_not_touch_the_cluster(
    control_plane: ControlPlane, cluster_rbac: str, verb: str, resource: str
) -> None:
    assert not can_i(control_plane, cluster_rbac, verb, resource, "--all-namespaces")


# -- the authorizer's answers, namespaced install -------------------------------------------


@pytest.fixture
def namespaced_rbac(
    control_plane: ControlPlane,
    installed_crd: str,
    k8s_namespace: str,
) -> str:
    """The namespaced variant's ServiceAccount, Role and RoleBinding, moved to a namespace of
    this test's own (so no ClusterRoleBinding of another test can answer for it)."""
    del installed_crd  # requested for its effect: the CRD must exist first
    objects = [
        o
        for o in kustomize(control_plane, NAMESPACED_OVERLAY)
        if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    ]
    text = to_yaml(objects).replace(
        f"namespace: {OPERATOR_NAMESPACE}", f"namespace: {k8s_namespace}"
    )
    control_plane.kubectl_run("apply", "--server-side", "-f", "-", input=text)
    user = f"system:serviceaccount:{k8s_namespace}:{OPERATOR_NAME}"
    wait_for_rbac(control_plane, user, "-n", k8s_namespace)
    return user


def test_the_namespaced_operator_may_do_what_it_needs_in_its_namespace_only(
    control_plane: ControlPlane, namespaced_rbac: str, k8s_namespace: str
) -> None:
    denied = [
        need
        for need in NAMESPACED_NEEDS
        if not can_i(
            control_plane,
            namespaced_rbac,
            need[0],
            need[1],
            "-n",
            k8s_namespace,
            subresource=need[2],
        )
    ]
    allowed_elsewhere = [
        need
        for need in NAMESPACED_NEEDS
        if can_i(
            control_plane,
            namespaced_rbac,
            need[0],
            need[1],
            "-n",
            "default",
            subresource=need[2],
        )
    ]

    assert denied == []
    assert allowed_elsewhere == []


def test_the_namespaced_operator_has_no_cluster_wide_rights(
    control_plane: ControlPlane, namespaced_rbac: str, k8s_namespace: str
) -> None:
    granted = [
        need
        for need in [*CLUSTER_WIDE_NEEDS, *CLUSTER_SCOPED_NEEDS]
        if can_i(control_plane, namespaced_rbac, need[0], need[1], "--all-namespaces")
    ]
    more = [
        need
        for need in NAMESPACED_FORBIDDEN
        if can_i(
            control_plane,
            namespaced_rbac,
            need[0],
            need[1],
            "-n",
            k8s_namespace,
            subresource=need[2],
        )
    ]

    assert granted == []
    assert more == []


# -- the operator itself, with only its ServiceAccount's rights -----------------------------


def get(plane: ControlPlane, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    result = plane.kubectl_run("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def sample_children() -> list[tuple[str, str]]:
    """(kind, name) of the children the operator creates for the two samples."""
    wanted = [("persistentvolumeclaim", "examples-production-redis")]
    for pool in ("examples-preview", "examples-production"):
        wanted += [("deployment", f"{pool}-{c}") for c in ("worker", "beat", "flower", "redis")]
        wanted += [("service", f"{pool}-{c}") for c in ("flower", "redis")]
        wanted += [("secret", f"{pool}-{c}") for c in ("flower", "redis")]
    return wanted


def missing_children(plane: ControlPlane, namespace: str) -> list[tuple[str, str]]:
    return [
        (kind, name)
        for kind, name in sample_children()
        if get(plane, namespace, kind, name) is None
    ]


def reconcile_samples_and_scale(
    plane: ControlPlane, operator: LocalOperator, namespace: str
) -> None:
    plane.kubectl_run("apply", "-k", str(SAMPLES), "-n", namespace)
    # With a Role only, Kopf first retries its refused cluster-scoped requests for about 55 s
    # (its default backoffs) before it serves the namespace.
    wait_for(
        lambda: not missing_children(plane, namespace),
        timeout=150,
        message=lambda: f"children {missing_children(plane, namespace)}; " + operator.describe(),
    )

    def status_written() -> bool:
        pool = get(plane, namespace, "workerpool", "examples-preview") or {}
        conditions = {c["type"]: c for c in pool.get("status", {}).get("conditions", [])}
        return set(conditions) == {"Ready", "Reconciling", "Stalled"} and (
            conditions["Stalled"]["status"] == "False"
        )

    wait_for(status_written, timeout=60, message=operator.describe)

    plane.kubectl_run("scale", "wp/examples-preview", "--replicas=2", "-n", namespace)
    wait_for(
        lambda: (get(plane, namespace, "deployment", "examples-preview-worker") or {})
        .get("spec", {})
        .get("replicas")
        == 2,
        timeout=60,
        message=operator.describe,
    )

    # Deletion completes: Kopf may patch away its finalizer, the garbage collector the rest.
    plane.kubectl_run("delete", "-k", str(SAMPLES), "-n", namespace, "--timeout=90s")


@pytest.mark.timeout(240)
def test_the_cluster_wide_operator_reconciles_the_samples_with_only_its_rbac(
    private_plane: ControlPlane, tmp_path: Path
) -> None:
    private_plane.kubectl_run("apply", "--server-side", "-k", str(MANIFESTS))
    install_crd(private_plane)
    operator = LocalOperator.from_cluster(private_plane, tmp_path).start()
    try:
        private_plane.kubectl_run("create", "namespace", "apps")
        reconcile_samples_and_scale(private_plane, operator, "apps")
    finally:
        operator.stop()

    assert refusals(operator.log()) == []


@pytest.mark.timeout(300)
def test_the_namespaced_operator_reconciles_its_namespace_only_with_only_its_role(
    private_plane: ControlPlane, tmp_path: Path
) -> None:
    private_plane.kubectl_run("apply", "--server-side", "-k", str(NAMESPACED_OVERLAY))
    install_crd(private_plane)
    operator = LocalOperator.from_cluster(private_plane, tmp_path).start()
    try:
        private_plane.kubectl_run("create", "namespace", "elsewhere")
        private_plane.kubectl_run("apply", "-k", str(SAMPLES), "-n", "elsewhere")
        reconcile_samples_and_scale(private_plane, operator, OPERATOR_NAMESPACE)
        # Reconciled meanwhile in workerpool-system; never outside it.
        assert missing_children(private_plane, "elsewhere") == sample_children()
        assert "status" not in (get(private_plane, "elsewhere", "wp", "examples-preview") or {})
    finally:
        operator.stop()

    assert refusals(operator.log(), tolerated=KOPF_NAMESPACED_REFUSALS) == []
