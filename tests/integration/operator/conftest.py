"""The operator under test: the CRD installed on the real test API server, and the operator
running as a real `workerpool-operator operator --all-namespaces` subprocess (the image's
ENTRYPOINT and the Deployment's args).

Why a subprocess and not kopf's in-process KopfRunner: it is exactly what the Deployment in
manifests/operator runs (the console script, the click command, kopf.run with standalone and
a liveness endpoint), it talks to the API server only through KUBECONFIG like it would in a
pod, and stopping it is a real SIGTERM, so the restart test restarts a process, not an event
loop. Its log goes to a file whose tail is attached to failures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane.harness import ControlPlane
from tests.controlplane.waiting import wait_for
from tests.integration.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "manifests" / "crd" / "workerpool.dev_workerpools.yaml"
SAMPLES = ROOT / "manifests" / "samples"


Operator = OperatorProcess

#: As the Deployment in manifests/operator runs it (liveness and metrics moved to free local
#: ports), but re-checking pools every 2 s instead of 10 s: what no watch event announces (a
#: deleted or restored Secret, a pod's container status) is then seen in seconds, not tens.
OPERATOR_ARGS = (
    "operator",
    "--all-namespaces",
    "--liveness=http://0.0.0.0:8080/healthz",
    "--resync-seconds=2",
    "--metrics-port=9090",
)


@pytest.fixture(scope="session")
def workerpool_crd(control_plane: ControlPlane) -> None:
    """The CRD from manifests/, applied as users do, and served before tests start."""
    control_plane.kubectl_run("apply", "--server-side", "-f", str(CRD_FILE))

    def is_established() -> bool:
        crd = "crd/workerpools.workerpool.dev"
        status = json.loads(control_plane.kubectl_run("get", crd, "-o", "json").stdout)["status"]
        conditions = status.get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(is_established, timeout=60, message="the WorkerPool CRD to be established")
    wait_for(
        lambda: control_plane.kubectl_run("get", "workerpools", "-A", check=False).returncode == 0,
        timeout=30,
        message="the workerpools resource to be served",
    )


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane,
    # Requested for its effect: the CRD is installed before the operator starts watching it.
    workerpool_crd: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    """Session-wide, so namespaces (function-scoped) are torn down while it still runs and
    can remove its finalizer from their WorkerPools."""
    del workerpool_crd  # requested for its effect: the CRD is served before the operator starts
    log = tmp_path_factory.mktemp("operator") / "log"
    process = OperatorProcess(OPERATOR_ARGS, control_plane.kubeconfig, log)
    process.start()
    try:
        yield process
    finally:
        process.stop()


class Kube:
    """kubectl in one namespace, returning parsed JSON."""

    def __init__(self, plane: ControlPlane, namespace: str, operator: Operator) -> None:
        self.plane = plane
        self.namespace = namespace
        self.operator = operator

    def run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = self.plane.kubectl_run("-n", self.namespace, *args, input=input, check=check)
        return result.stdout + result.stderr

    def try_run(self, *args: str, input: str | None = None) -> tuple[int, str]:
        result = self.plane.kubectl_run("-n", self.namespace, *args, input=input, check=False)
        return result.returncode, result.stdout + result.stderr

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        code, out = self.try_run("get", kind, name, "-o", "json")
        if code != 0:
            if "NotFound" in out:
                return None
            raise AssertionError(out)
        found: dict[str, Any] = json.loads(out)
        return found

    def must_get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.get(kind, name)
        assert found is not None, f"{kind}/{name} not found"
        return found

    def apply(self, manifest: dict[str, Any]) -> str:
        return self.run("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def pool(self, name: str) -> dict[str, Any]:
        return self.must_get("workerpool", name)

    def condition(self, pool: str, kind: str) -> dict[str, Any] | None:
        for condition in (self.pool(pool).get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                found: dict[str, Any] = condition
                return found
        return None

    def wait(self, predicate: Callable[[], Any], timeout: float, message: str) -> Any:
        return wait_for(
            predicate,
            timeout=timeout,
            interval=0.1,
            message=lambda: f"{message}\noperator log:\n{self.operator.tail(15)}",
        )

    def nodes_exist(self) -> bool:
        return bool(
            json.loads(self.plane.kubectl_run("get", "nodes", "-o", "json").stdout)["items"]
        )


@pytest.fixture
def kube(control_plane: ControlPlane, k8s_namespace: str, operator: Operator) -> Kube:
    return Kube(control_plane, k8s_namespace, operator)


def sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SAMPLES / name).read_text())
    return document


def pool_manifest(name: str = "shop", **spec: Any) -> dict[str, Any]:
    """A small valid preview WorkerPool with `spec` merged over it."""
    return {
        "apiVersion": "workerpool.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": {"image": "shop:1.0", "workerPackages": ["shop.jobs"], **spec},
    }


def children_of(pool: str, production: bool = False) -> list[tuple[str, str]]:
    """Every child a default pool gets (kind, name)."""
    found = [
        ("deployment", f"{pool}-worker"),
        ("deployment", f"{pool}-beat"),
        ("deployment", f"{pool}-flower"),
        ("deployment", f"{pool}-redis"),
        ("service", f"{pool}-flower"),
        ("service", f"{pool}-redis"),
        ("secret", f"{pool}-flower"),
        ("secret", f"{pool}-redis"),
    ]
    if production:
        found.append(("persistentvolumeclaim", f"{pool}-redis"))
    return found


def all_present(kube: Kube, children: list[tuple[str, str]]) -> bool:
    code, _ = kube.try_run("get", *(f"{kind}/{name}" for kind, name in children), "-o", "name")
    return code == 0


def resource_versions(kube: Kube, children: list[tuple[str, str]]) -> dict[str, str]:
    return {
        f"{kind}/{name}": kube.must_get(kind, name)["metadata"]["resourceVersion"]
        for kind, name in children
    }


def timed(fn: Callable[[], Any]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started
