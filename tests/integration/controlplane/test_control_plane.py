"""Proof that the test control plane is a real Kubernetes API server with real controllers.

Each test exercises server-side behaviour a mock would not have: CRD schema validation and
subresources, RBAC, the deployment/replicaset, garbage-collector and namespace controllers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from tests.controlplane.harness import ControlPlane, KubectlError
from tests.controlplane.waiting import wait_for

pytestmark = pytest.mark.integration

GROUP = "controlplane.workerpool.test"
VERSION = "v1"
PLURAL = "widgets"
CRD_NAME = f"{PLURAL}.{GROUP}"

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                    },
                },
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "queue": {"type": "string"},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"replicas": {"type": "integer"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "queue": "default"},
    }


def as_dict(value: object) -> dict[str, Any]:
    """The custom-objects API returns plain JSON objects typed as `object`."""
    assert isinstance(value, dict)
    return value


def uid_of(obj: Any) -> str:
    assert obj.metadata is not None
    uid: str = obj.metadata.uid
    return uid


def is_established(crd: Any) -> bool:
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="module")
def widget_crd(control_plane: ControlPlane, k8s_api: kubernetes.client.ApiClient) -> Iterator[str]:
    """The Widget CRD, installed with kubectl and Established; removed after the module."""
    control_plane.kubectl_run("apply", "-f", "-", input=json.dumps(WIDGET_CRD))
    extensions = kubernetes.client.ApiextensionsV1Api(k8s_api)
    wait_for(
        lambda: is_established(extensions.read_custom_resource_definition(CRD_NAME)),
        timeout=60,
        message=f"CRD {CRD_NAME} to be Established",
    )
    yield CRD_NAME
    control_plane.kubectl_run("delete", "crd", CRD_NAME, "--wait=false")


def test_kubectl_and_the_server_report_the_pinned_kubernetes_version(
    control_plane: ControlPlane,
) -> None:
    versions = json.loads(control_plane.kubectl_run("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == control_plane.version
    client_minor = int(versions["clientVersion"]["minor"].rstrip("+"))
    assert abs(client_minor - int(versions["serverVersion"]["minor"].rstrip("+"))) <= 1


def test_rbac_is_enforced_for_everyone_but_the_admin(
    control_plane: ControlPlane, k8s_namespace: str
) -> None:
    as_default_sa = f"--as=system:serviceaccount:{k8s_namespace}:default"
    denied = control_plane.kubectl_run(
        "auth", "can-i", "create", "pods", "-n", k8s_namespace, as_default_sa, check=False
    )
    assert denied.stdout.strip() == "no"
    assert control_plane.kubectl_run("auth", "can-i", "*", "*").stdout.strip() == "yes"


@pytest.mark.usefixtures("widget_crd")
def test_a_crd_with_status_and_scale_subresources_is_served_and_scaled_by_kubectl(
    control_plane: ControlPlane, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, PLURAL, widget("alpha", replicas=1)
    )

    control_plane.kubectl_run("scale", "widget/alpha", "--replicas=3", "-n", k8s_namespace)

    stored = as_dict(
        custom.get_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, "alpha")
    )
    assert stored["spec"]["replicas"] == 3
    scale = as_dict(
        custom.get_namespaced_custom_object_scale(GROUP, VERSION, k8s_namespace, PLURAL, "alpha")
    )
    assert scale["spec"]["replicas"] == 3

    # With a status subresource, status is written only through /status.
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, k8s_namespace, PLURAL, "alpha", {"status": {"replicas": 2}}
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, k8s_namespace, PLURAL, "alpha", {"status": {"replicas": 99}}
    )
    stored = as_dict(
        custom.get_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, "alpha")
    )
    assert stored["status"] == {"replicas": 2}


@pytest.mark.usefixtures("widget_crd")
def test_a_schema_invalid_custom_object_is_rejected_with_the_api_servers_message(
    control_plane: ControlPlane, k8s_namespace: str
) -> None:
    with pytest.raises(KubectlError) as rejected:
        control_plane.kubectl_run(
            "create", "-n", k8s_namespace, "-f", "-", input=json.dumps(widget("bad", -1))
        )

    assert 'The Widget "bad" is invalid' in rejected.value.stderr
    assert "spec.replicas in body should be greater than or equal to 0" in rejected.value.stderr


def test_a_deployment_gets_a_replicaset_and_ready_pods_on_the_fake_node(
    control_plane: ControlPlane, k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    apps = kubernetes.client.AppsV1Api(k8s_api)
    labels = {"app": "web"}
    deployment = apps.create_namespaced_deployment(
        k8s_namespace,
        kubernetes.client.V1Deployment(
            metadata=kubernetes.client.V1ObjectMeta(name="web"),
            spec=kubernetes.client.V1DeploymentSpec(
                replicas=2,
                selector=kubernetes.client.V1LabelSelector(match_labels=labels),
                template=kubernetes.client.V1PodTemplateSpec(
                    metadata=kubernetes.client.V1ObjectMeta(labels=labels),
                    spec=kubernetes.client.V1PodSpec(
                        containers=[
                            kubernetes.client.V1Container(
                                name="web", image="registry.k8s.io/pause:3.10"
                            )
                        ]
                    ),
                ),
            ),
        ),
    )

    def owned_replicasets() -> list[Any]:
        sets = apps.list_namespaced_replica_set(k8s_namespace).items
        return [
            rs
            for rs in sets
            if rs.metadata is not None
            and any(ref.uid == uid_of(deployment) for ref in rs.metadata.owner_references or [])
        ]

    replicasets = wait_for(owned_replicasets, timeout=60, message="a ReplicaSet owned by web")
    assert replicasets[0].spec.replicas == 2

    core = kubernetes.client.CoreV1Api(k8s_api)
    if not control_plane.nodes:
        # Binaries without kwok (KUBEBUILDER_ASSETS): pods are created but stay Pending.
        wait_for(
            lambda: len(core.list_namespaced_pod(k8s_namespace).items) == 2,
            timeout=60,
            message="the ReplicaSet controller to create 2 pods",
        )
        return

    def ready_replicas() -> int:
        status = apps.read_namespaced_deployment_status("web", k8s_namespace).status
        return (status and status.ready_replicas) or 0

    # Scheduler binds the pods to the kwok node, kwok reports them Running and Ready, the
    # deployment controller counts them.
    wait_for(lambda: ready_replicas() == 2, timeout=60, message="web to have 2 ready replicas")
    pods = core.list_namespaced_pod(k8s_namespace).items
    assert {(pod.spec.node_name, pod.status.phase) for pod in pods if pod.spec and pod.status} == {
        (control_plane.nodes[0], "Running")
    }


def config_map(name: str, owner: dict[str, Any] | None = None) -> kubernetes.client.V1ConfigMap:
    references = [kubernetes.client.V1OwnerReference(**owner)] if owner else None
    return kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name=name, owner_references=references),
        data={"key": "value"},
    )


def is_gone(read: Any) -> bool:
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def test_deleting_an_owner_garbage_collects_the_configmap_it_owns(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(k8s_api)
    owner = core.create_namespaced_config_map(k8s_namespace, config_map("owner"))
    core.create_namespaced_config_map(
        k8s_namespace,
        config_map(
            "dependent",
            {"api_version": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid_of(owner)},
        ),
    )

    core.delete_namespaced_config_map("owner", k8s_namespace)

    wait_for(
        lambda: is_gone(lambda: core.read_namespaced_config_map("dependent", k8s_namespace)),
        timeout=60,
        message="the garbage collector to delete the dependent ConfigMap",
    )


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("widget_crd")
def test_deleting_a_custom_object_garbage_collects_the_configmap_it_owns(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    # The garbage collector picks up new CRDs on its discovery resync, every 30 s (fixed in
    # kube-controller-manager), so this can take that long the first time: the operator's
    # tests meet the same delay when they delete a freshly installed custom object.
    custom = kubernetes.client.CustomObjectsApi(k8s_api)
    core = kubernetes.client.CoreV1Api(k8s_api)
    owner = as_dict(
        custom.create_namespaced_custom_object(
            GROUP, VERSION, k8s_namespace, PLURAL, widget("owner", replicas=1)
        )
    )
    core.create_namespaced_config_map(
        k8s_namespace,
        config_map(
            "owned-by-widget",
            {
                "api_version": f"{GROUP}/{VERSION}",
                "kind": "Widget",
                "name": "owner",
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "block_owner_deletion": True,
            },
        ),
    )

    custom.delete_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, "owner")

    wait_for(
        lambda: is_gone(lambda: core.read_namespaced_config_map("owned-by-widget", k8s_namespace)),
        timeout=120,
        interval=0.5,
        message="the garbage collector to delete the ConfigMap owned by the Widget",
    )


def test_a_deleted_namespace_is_emptied_and_removed_by_the_namespace_controller(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    # A namespace of its own: the fixture's namespace is deleted without waiting.
    core = kubernetes.client.CoreV1Api(k8s_api)
    name = f"{k8s_namespace[:55]}-doomed"
    core.create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=name))
    )
    core.create_namespaced_config_map(name, config_map("content"))

    core.delete_namespace(name)

    wait_for(
        lambda: is_gone(lambda: core.read_namespace(name)),
        timeout=90,
        interval=0.5,
        message=f"namespace {name} to be removed",
    )
