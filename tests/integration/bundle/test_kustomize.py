"""The kustomizations, built by real kustomize (the control plane's kubectl), and their parity
with the Helm chart: both install routes must grant the same RBAC and run the same operator pod.
"""

from __future__ import annotations

import pytest
import yaml

from tests.controlplane.harness import ControlPlane
from tests.integration.bundle.bundle import (
    CRD_FILE,
    MANIFESTS,
    NAMESPACED_OVERLAY,
    OPERATOR_NAME,
    OPERATOR_NAMESPACE,
    SAMPLES,
    all_of,
    kinds,
    kustomize,
    load_values,
    only,
    operator_container,
    operator_workload,
    render_chart,
    rules,
)

pytestmark = pytest.mark.integration


def test_the_base_installs_crd_namespace_identity_rbac_and_operator(
    control_plane: ControlPlane,
) -> None:
    objects = kustomize(control_plane, MANIFESTS)

    assert kinds(objects) == [
        ("Namespace", None, OPERATOR_NAMESPACE),
        ("CustomResourceDefinition", None, "workerpools.workerpool.dev"),
        ("ServiceAccount", OPERATOR_NAMESPACE, OPERATOR_NAME),
        ("ClusterRole", None, OPERATOR_NAME),
        ("ClusterRoleBinding", None, OPERATOR_NAME),
        ("Deployment", OPERATOR_NAMESPACE, OPERATOR_NAME),
    ]
    assert all(
        o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "workerpool" for o in objects
    )


def test_the_base_carries_the_crd_of_manifests_crd_unchanged_but_for_the_part_of_label(
    control_plane: ControlPlane,
) -> None:
    built = only(kustomize(control_plane, MANIFESTS), "CustomResourceDefinition")
    source = yaml.safe_load(CRD_FILE.read_text())
    del built["metadata"]["labels"]["app.kubernetes.io/part-of"]

    assert built == source


def test_the_base_runs_the_operator_cluster_wide_and_does_not_include_the_samples(
    control_plane: ControlPlane,
) -> None:
    objects = kustomize(control_plane, MANIFESTS)

    assert "--all-namespaces" in operator_container(objects)["args"]
    assert not all_of(objects, "WorkerPool")


def test_the_namespaced_variant_has_no_cluster_wide_rights_and_watches_its_namespace(
    control_plane: ControlPlane,
) -> None:
    objects = kustomize(control_plane, NAMESPACED_OVERLAY)

    assert kinds(objects) == [
        ("Namespace", None, OPERATOR_NAMESPACE),
        ("CustomResourceDefinition", None, "workerpools.workerpool.dev"),
        ("ServiceAccount", OPERATOR_NAMESPACE, OPERATOR_NAME),
        ("Role", OPERATOR_NAMESPACE, OPERATOR_NAME),
        ("RoleBinding", OPERATOR_NAMESPACE, OPERATOR_NAME),
        ("Deployment", OPERATOR_NAMESPACE, OPERATOR_NAME),
    ]
    assert operator_container(objects)["args"] == [
        "operator",
        "--namespace=workerpool-system",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--metrics-port=9090",
    ]
    assert only(objects, "RoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE}
    ]


def test_the_namespaced_role_repeats_the_cluster_roles_namespaced_rules(
    control_plane: ControlPlane,
) -> None:
    cluster_rules = rules(only(kustomize(control_plane, MANIFESTS), "ClusterRole"))
    role_rules = rules(only(kustomize(control_plane, NAMESPACED_OVERLAY), "Role"))

    # The ClusterRole = the Role's rules, then the cluster-scoped ones.
    assert cluster_rules[: len(role_rules)] == role_rules
    assert cluster_rules[len(role_rules) :] == [
        {
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"],
        }
    ]


def test_the_samples_kustomization_lists_every_sample(control_plane: ControlPlane) -> None:
    objects = kustomize(control_plane, SAMPLES)
    files = sorted(p.name for p in SAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")

    assert len(objects) == len(files) > 0
    assert {o["kind"] for o in objects} == {"WorkerPool"}
    assert all("namespace" not in o["metadata"] for o in objects)  # the user's namespace


# -- Helm and kustomize agree ---------------------------------------------------------------


def test_helm_and_kustomize_grant_the_same_cluster_wide_rules(
    control_plane: ControlPlane,
) -> None:
    assert rules(only(render_chart(), "ClusterRole")) == rules(
        only(kustomize(control_plane, MANIFESTS), "ClusterRole")
    )


def test_helm_and_kustomize_grant_the_same_namespaced_rules(
    control_plane: ControlPlane,
) -> None:
    assert rules(only(render_chart(load_values("namespaced")), "Role")) == rules(
        only(kustomize(control_plane, NAMESPACED_OVERLAY), "Role")
    )


def test_helm_and_kustomize_run_the_same_operator_pod(control_plane: ControlPlane) -> None:
    assert operator_workload(render_chart()) == operator_workload(
        kustomize(control_plane, MANIFESTS)
    )


def test_helm_and_kustomize_run_the_same_namespaced_operator_pod(
    control_plane: ControlPlane,
) -> None:
    assert operator_workload(render_chart(load_values("namespaced"))) == operator_workload(
        kustomize(control_plane, NAMESPACED_OVERLAY)
    )


def test_helm_and_kustomize_name_the_service_account_and_bindings_alike(
    control_plane: ControlPlane,
) -> None:
    helm_objects = render_chart()
    kustomize_objects = kustomize(control_plane, MANIFESTS)

    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"):
        assert kinds(all_of(helm_objects, kind)) == kinds(all_of(kustomize_objects, kind))
    helm_binding = only(helm_objects, "ClusterRoleBinding")
    kustomize_binding = only(kustomize_objects, "ClusterRoleBinding")
    assert helm_binding["subjects"] == kustomize_binding["subjects"]
    assert helm_binding["roleRef"] == kustomize_binding["roleRef"]
