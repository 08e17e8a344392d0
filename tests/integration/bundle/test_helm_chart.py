"""The Helm chart, linted and rendered by the real Helm library (helm_python, Helm v4).

Assertions are on the rendered objects: kinds and names, the restricted security context,
the liveness probe wired to Kopf's endpoint, RBAC, and what values change. The chart's
contract (values.schema.json) and its refusal of contradictory values are checked by their
messages, since those messages are what a user reads.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.integration.bundle.bundle import (
    CHART,
    CI_VALUES,
    OPERATOR_NAME,
    OPERATOR_NAMESPACE,
    all_of,
    kinds,
    load_values,
    only,
    operator_container,
    permissions,
    render_chart,
    render_chart_files,
)

pytestmark = pytest.mark.integration

VALUES_FILES = sorted(p.name.removesuffix("-values.yaml") for p in CI_VALUES.glob("*-values.yaml"))


def lint_findings(values: dict[str, Any] | None) -> list[dict[str, Any]]:
    report = helm.lint(CHART, values, strict=True, namespace=OPERATOR_NAMESPACE)
    # Severity 1 is informational ("icon is recommended"); strict lint fails on the rest.
    findings: list[dict[str, Any]] = [m for m in report["messages"] if m["severity"] > 1]
    return findings + [{"error": e} for e in report["errors"]]


def test_the_chart_passes_strict_lint_with_its_default_values() -> None:
    assert lint_findings(None) == []


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_the_chart_passes_strict_lint_with_each_ci_values_file(values_file: str) -> None:
    assert lint_findings(load_values(values_file)) == []


def test_there_are_values_files_for_the_namespaced_and_a_customised_install() -> None:
    assert {"namespaced", "custom"} <= set(VALUES_FILES)


def test_the_default_render_is_a_cluster_wide_operator_in_the_release_namespace() -> None:
    objects = render_chart()

    assert sorted(kinds(objects), key=str) == sorted(
        [
            ("ClusterRole", None, OPERATOR_NAME),
            ("ClusterRoleBinding", None, OPERATOR_NAME),
            ("Deployment", OPERATOR_NAMESPACE, OPERATOR_NAME),
            ("ServiceAccount", OPERATOR_NAMESPACE, OPERATOR_NAME),
        ],
        key=str,
    )
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": OPERATOR_NAME,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE}
    ]
    assert operator_container(objects)["args"] == [
        "operator",
        "--all-namespaces",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
    ]


def test_the_operator_runs_alone_and_is_replaced_not_rolled() -> None:
    deployment = only(render_chart(), "Deployment")

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_the_operator_pod_meets_the_restricted_pod_security_standard() -> None:
    objects = render_chart()
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(objects)

    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    # The only writable path is an emptyDir on /tmp, where HOME points.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert {"name": "HOME", "value": "/tmp"} in container["env"]


def test_the_liveness_probe_asks_kopfs_health_endpoint() -> None:
    container = operator_container(render_chart())

    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert container["ports"] == [
        {"name": "liveness", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "liveness"}
    assert "readinessProbe" not in container  # nothing routes traffic to the operator


def test_the_operator_has_requests_and_limits_by_default() -> None:
    assert operator_container(render_chart())["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }


def test_the_default_rbac_has_no_wildcards_and_no_update_on_objects() -> None:
    granted = permissions(only(render_chart(), "ClusterRole"))

    assert not [p for p in granted if "*" in p]
    assert {p for p in granted if p[2] == "update"} == {
        ("workerpool.dev", "workerpools/finalizers", "update")
    }
    assert not [p for p in granted if p[1] == "secrets" and p[2] in ("list", "watch")]


def test_the_namespaced_values_give_roles_in_the_watched_namespace_only() -> None:
    objects = render_chart(load_values("namespaced"))

    assert not all_of(objects, "ClusterRole")
    assert not all_of(objects, "ClusterRoleBinding")
    role = only(objects, "Role")
    assert role["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert not [p for p in permissions(role) if p[0] == "apiextensions.k8s.io"]
    binding = only(objects, "RoleBinding")
    assert binding["roleRef"]["kind"] == "Role"
    assert operator_container(objects)["args"] == [
        "operator",
        "--namespace=workerpool-system",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
    ]


def test_custom_values_set_image_resources_ids_scheduling_and_one_role_per_namespace() -> None:
    objects = render_chart(load_values("custom"))
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(objects)

    assert container["image"] == "registry.example.com/platform/workerpool-operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    assert container["args"] == [
        "operator",
        "--namespace=team-a",
        "--namespace=team-b",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
        "--verbose",
    ]
    assert pod["securityContext"]["runAsUser"] == 20000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "platform"
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "false"
    }
    assert sorted(r["metadata"]["namespace"] for r in all_of(objects, "Role")) == [
        "team-a",
        "team-b",
    ]
    for binding in all_of(objects, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == OPERATOR_NAMESPACE


def test_the_image_tag_defaults_to_the_charts_app_version() -> None:
    with helm.Chart.load(CHART) as chart:
        app_version = chart.metadata["appVersion"]

    assert operator_container(render_chart())["image"] == f"workerpool-operator:{app_version}"


def test_an_existing_service_account_can_be_named_instead_of_created() -> None:
    objects = render_chart({"serviceAccount": {"create": False, "name": "platform-operator"}})

    assert not all_of(objects, "ServiceAccount")
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-operator"
    assert only(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "platform-operator"


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    objects = render_chart({"rbac": {"create": False}})

    assert {o["kind"] for o in objects} == {"Deployment", "ServiceAccount"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": 2}, "at '': additional properties 'replicas' not allowed"),
        (
            {"rbac": {"clusterwide": False}},
            "at '/rbac': additional properties 'clusterwide' not allowed",
        ),
        (
            {"resources": {"limits": {"gpu": 1}}},
            "at '/resources/limits': additional properties 'gpu' not allowed",
        ),
        (
            {"image": {"repository": "x", "pullPolicy": "Sometimes"}},
            "at '/image/pullPolicy'",
        ),
        ({"watchNamespaces": ["Team_A"]}, "at '/watchNamespaces/0'"),
    ],
)
def test_the_schema_rejects_unknown_keys_and_bad_values(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as rejected:
        render_chart(values)

    assert "values don't meet the specifications of the schema(s)" in str(rejected.value)
    assert message in str(rejected.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"replicaCount": 2},
            "replicaCount=2: the operator runs standalone (no Kopf peering) with the Recreate "
            "strategy",
        ),
        (
            {"rbac": {"clusterWide": False}},
            "rbac.clusterWide=false gives the operator Roles only in watchNamespaces, but "
            "watchNamespaces is empty",
        ),
        (
            {"watchNamespaces": ["team-a"]},
            "watchNamespaces=[team-a] limits the operator to those namespaces but "
            "rbac.clusterWide=true grants it every namespace",
        ),
        (
            {"serviceAccount": {"create": False}},
            "serviceAccount.name is required when serviceAccount.create=false",
        ),
    ],
)
def test_contradictory_values_stop_the_render_with_what_to_change(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError) as refused:
        render_chart(values)

    assert message in str(refused.value)


def test_zero_replicas_pause_the_operator() -> None:
    assert only(render_chart({"replicaCount": 0}), "Deployment")["spec"]["replicas"] == 0


def test_the_notes_say_how_to_create_a_pool_and_reach_flower() -> None:
    notes = render_chart_files()["workerpool-operator/templates/NOTES.txt"]

    assert "kind: WorkerPool" in notes
    assert "kubectl -n default get wp my-pool" in notes
    assert "kubectl -n default scale wp/my-pool --replicas=3" in notes
    assert (
        "kubectl -n default get secret my-pool-flower -o jsonpath='{.data.password}' "
        "| base64 -d" in notes
    )
    assert "kubectl -n default port-forward svc/my-pool-flower 5555" in notes
    assert "kubectl -n workerpool-system rollout status deploy/workerpool-operator" in notes


def test_the_notes_use_the_watched_namespace_of_a_namespaced_install() -> None:
    notes = render_chart_files(load_values("namespaced"))["workerpool-operator/templates/NOTES.txt"]

    assert "kubectl -n workerpool-system port-forward svc/my-pool-flower 5555" in notes
