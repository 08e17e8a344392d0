"""What the bundle tests share: rendering the chart, building the kustomizations, picking and
normalising objects, and running the operator locally with its ServiceAccount's token.

Rendering goes through the real Helm library (helm_python) and the real kustomize (inside the
control plane's kubectl). Must not decide what is correct: the tests assert.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from tests.controlplane.harness import ControlPlane
from tests.controlplane.waiting import wait_for
from tests.integration.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "manifests"
NAMESPACED_OVERLAY = MANIFESTS / "overlays" / "namespaced"
SAMPLES = MANIFESTS / "samples"
CRD_FILE = MANIFESTS / "crd" / "workerpool.dev_workerpools.yaml"
CHART = ROOT / "charts" / "workerpool-operator"
CI_VALUES = CHART / "ci"

RELEASE = "workerpool-operator"
OPERATOR_NAMESPACE = "workerpool-system"
OPERATOR_NAME = "workerpool-operator"
CRD_NAME = "workerpools.workerpool.dev"

Obj = dict[str, Any]


# -- rendering ------------------------------------------------------------------------------


def load_values(name: str) -> Obj:
    """A values file of the chart's ci/ folder, e.g. "namespaced"."""
    values: Obj = yaml.safe_load((CI_VALUES / f"{name}-values.yaml").read_text())
    return values


def render_chart_files(
    values: Mapping[str, Any] | None = None, namespace: str = OPERATOR_NAMESPACE
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template workerpool-operator` would print."""
    with helm.Chart.load(CHART) as chart:
        return chart.render(
            dict(values) if values is not None else None,
            name=RELEASE,
            namespace=namespace,
            is_install=True,
        )


def render_chart(
    values: Mapping[str, Any] | None = None, namespace: str = OPERATOR_NAMESPACE
) -> list[Obj]:
    """The chart's objects (templates only; crds/ are installed, not rendered, by Helm)."""
    files = render_chart_files(values, namespace)
    return [
        doc
        for path, text in sorted(files.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def kustomize(plane: ControlPlane, directory: Path) -> list[Obj]:
    """`kubectl kustomize DIRECTORY`, parsed."""
    built = plane.kubectl_run("kustomize", str(directory)).stdout
    return [doc for doc in yaml.safe_load_all(built) if doc]


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)


def install_crd(plane: ControlPlane) -> None:
    """The CRD from manifests/, applied as users do, and served."""
    plane.kubectl_run("apply", "--server-side", "-f", str(CRD_FILE))
    # Polled rather than `kubectl wait`: kubectl 1.37 fails at once ("conditions accessor
    # error") when it reads the CRD before the API server has written any status condition.
    established = '{.status.conditions[?(@.type=="Established")].status}'
    wait_for(
        lambda: plane.kubectl_run(
            "get", f"crd/{CRD_NAME}", "-o", f"jsonpath={established}", check=False
        ).stdout.strip()
        == "True",
        timeout=60,
        message=f"crd/{CRD_NAME} to be Established",
    )
    wait_for(
        lambda: plane.kubectl_run("get", "workerpools", "-A", check=False).returncode == 0,
        timeout=30,
        message="the workerpools resource to be served",
    )


# -- picking and normalising ----------------------------------------------------------------


def kinds(objects: Iterable[Mapping[str, Any]]) -> list[tuple[str, str | None, str]]:
    """(kind, namespace, name) of each object, in order."""
    return [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]


def only(objects: Iterable[Mapping[str, Any]], kind: str) -> Obj:
    found = [dict(o) for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {kinds(found) or 'none'}"
    return found[0]


def all_of(objects: Iterable[Mapping[str, Any]], kind: str) -> list[Obj]:
    return [dict(o) for o in objects if o["kind"] == kind]


def rules(role: Mapping[str, Any]) -> list[Obj]:
    """A (Cluster)Role's rules with each list sorted: order of rules kept, spelling ignored."""
    return [{key: sorted(value) for key, value in sorted(rule.items())} for rule in role["rules"]]


def permissions(role: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) the role grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def operator_workload(objects: Iterable[Mapping[str, Any]]) -> Obj:
    """The operator Deployment minus what legitimately differs between Helm and kustomize
    (labels and selectors: Helm adds its release labels)."""
    deployment = copy.deepcopy(only(objects, "Deployment"))
    spec = deployment["spec"]
    return {
        "replicas": spec["replicas"],
        "strategy": spec["strategy"],
        "pod": spec["template"]["spec"],
    }


def operator_container(objects: Iterable[Mapping[str, Any]]) -> Obj:
    containers = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Obj = containers[0]
    return container


# -- the operator, run locally as its ServiceAccount ----------------------------------------


def token_kubeconfig(plane: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as system:serviceaccount:NAMESPACE:ACCOUNT (a bound
    token from the TokenRequest API, like the one a pod gets)."""
    token = plane.kubectl_run(
        "create", "token", account, "-n", namespace, "--duration=2h"
    ).stdout.strip()
    admin = json.loads(plane.kubeconfig.read_text())
    user = f"system:serviceaccount:{namespace}:{account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": admin["clusters"][0]["name"], "user": user},
            }
        ],
        "current-context": "operator",
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


class LocalOperator(OperatorProcess):
    """`workerpool <args of the operator Deployment>` as a local process, authenticated as the
    Deployment's ServiceAccount: the pod as the kubelet would run it, minus the container."""

    @classmethod
    def from_cluster(cls, plane: ControlPlane, tmp_path: Path) -> LocalOperator:
        """Read the installed operator Deployment and prepare to run its container locally."""
        found = json.loads(
            plane.kubectl_run(
                "get",
                "deployments",
                "-A",
                "-l",
                "app.kubernetes.io/component=operator",
                "-o",
                "json",
            ).stdout
        )["items"]
        assert len(found) == 1, f"expected one operator Deployment, found {len(found)}"
        deployment = found[0]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        kubeconfig = token_kubeconfig(
            plane,
            deployment["metadata"]["namespace"],
            pod["serviceAccountName"],
            tmp_path / "operator.kubeconfig",
        )
        return cls(container["args"], kubeconfig, tmp_path / "operator.log")


# What Kopf is refused with a Role only (the namespaced install): listing namespaces and
# watching CRDs, both cluster-scoped. Kopf retries them (logging errors), then warns and works
# with the namespaces it was given. A cluster-wide install must not be refused anything.
KOPF_NAMESPACED_REFUSALS = (
    r"GET \S+/apis/apiextensions\.k8s\.io/v1/customresourcedefinitions(\?\S*)? -> "
    r"APIForbiddenError",
    r"GET \S+/api/v1/namespaces(\?\S*)? -> APIForbiddenError",
    r"Not enough permissions to (list namespaces|watch for resources|watch for namespaces)",
)


def refusals(log: str, tolerated: Sequence[str] = ()) -> list[str]:
    """Log lines where the API server refused the operator something, minus those matching a
    `tolerated` regular expression."""
    markers = ("Forbidden", "forbidden", "Not enough permissions")
    return [
        line
        for line in log.splitlines()
        if any(marker in line for marker in markers)
        and not any(re.search(pattern, line) for pattern in tolerated)
    ]
