"""Each sample under manifests/samples, applied with kubectl, becomes its children with an
honest status; the time from `kubectl apply` to all children present is measured."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kubernetes.client
import pytest

from tests.integration.operator.conftest import SAMPLES, Kube, all_present, children_of, sample

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("file", "production"),
    [("workerpool-preview.yaml", False), ("workerpool-production.yaml", True)],
)
def test_a_sample_becomes_its_children_and_reports_its_state(
    kube: Kube,
    k8s_api: kubernetes.client.ApiClient,
    file: str,
    production: bool,
    record_property: Callable[[str, object], None],
) -> None:
    manifest = sample(file)
    name = manifest["metadata"]["name"]
    children = children_of(name, production)

    # Polled with the Python client (a few ms per check) rather than kubectl (~0.3 s each),
    # so the figure is the operator's latency, not the test's.
    core, apps = kubernetes.client.CoreV1Api(k8s_api), kubernetes.client.AppsV1Api(k8s_api)
    selector = f"app.kubernetes.io/instance={name}"

    def present() -> set[tuple[str, str]]:
        ns = kube.namespace
        listed: list[tuple[str, Any]] = [
            ("deployment", apps.list_namespaced_deployment(ns, label_selector=selector)),
            ("service", core.list_namespaced_service(ns, label_selector=selector)),
            ("secret", core.list_namespaced_secret(ns, label_selector=selector)),
            ("persistentvolumeclaim",
             core.list_namespaced_persistent_volume_claim(ns, label_selector=selector)),
        ]  # fmt: skip
        return {(kind, item.metadata.name) for kind, found in listed for item in found.items}

    started = time.monotonic()
    kube.run("apply", "-f", str(SAMPLES / file))
    kube.wait(lambda: present() == set(children), timeout=30, message=f"children of {name}")
    elapsed = time.monotonic() - started
    assert all_present(kube, children)
    record_property("apply_to_children_seconds", round(elapsed, 2))
    print(f"\n{file}: kubectl apply -> all {len(children)} children present in {elapsed:.2f}s")
    assert elapsed < 10

    pool = kube.pool(name)
    uid = pool["metadata"]["uid"]
    for kind, child in children:
        obj = kube.must_get(kind, child)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == name
        if kind == "persistentvolumeclaim":
            # Retained by default (whenDeleted: Retain): deleting the pool must not delete it.
            assert "ownerReferences" not in obj["metadata"]
            continue
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == ("WorkerPool", uid, True)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == name

    worker = kube.must_get("deployment", f"{name}-worker")
    assert worker["spec"]["replicas"] == (3 if production else 1)
    containers = worker["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["celery-worker"]
    assert containers[0]["resources"]["requests"] == (
        {"cpu": "500m", "memory": "1Gi"} if production else {"cpu": "200m", "memory": "512Mi"}
    )
    redis = kube.must_get("deployment", f"{name}-redis")["spec"]["template"]["spec"]
    assert ("--appendonly" in redis["containers"][0]["command"]) is True
    assert ("yes" in redis["containers"][0]["command"]) is production

    def status_written() -> bool:
        status = kube.pool(name).get("status") or {}
        return bool(status.get("observedGeneration") == pool["metadata"]["generation"])

    kube.wait(status_written, timeout=15, message=f"status of {name}")
    status = kube.pool(name)["status"]
    assert status["desiredReplicas"] == (3 if production else 1)
    assert status["selector"] == (
        f"app.kubernetes.io/component=worker,app.kubernetes.io/instance={name},"
        "app.kubernetes.io/name=workerpool"
    )
    assert set(status["components"]) == {"worker", "beat", "flower", "redis"}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Stalled"]["status"] == "False"
    if can_become_ready(kube, name, production):
        # Nodes that run pods (kwok) and storage for the claim: the pool must become Ready.
        kube.wait(
            lambda: kube.condition(name, "Ready")["status"] == "True",  # type: ignore[index]
            timeout=120,
            message=f"{name} Ready",
        )
        expected_row = [name, manifest["spec"]["environment"], str(status["desiredReplicas"])]
    else:
        # Pods cannot run here, and the status must say so instead of pretending.
        assert conditions["Ready"]["status"] == "False"
        assert conditions["Ready"]["reason"] == "Progressing"
        assert conditions["Reconciling"]["status"] == "True"
        assert "redis (0/1 ready)" in conditions["Reconciling"]["message"]
        ready_replicas = str(kube.pool(name)["status"]["readyReplicas"])
        expected_row = [
            name,
            "production" if production else "preview",
            "3" if production else "1",
            ready_replicas,
            "Progressing",
        ]
    table = kube.run("get", "wp", name)
    print(table)
    header, row = table.splitlines()[:2]
    columns = ["NAME", "ENVIRONMENT", "DESIRED", "READY", "BACKLOG", "STATUS", "AGE"]
    assert header.split() == columns
    # Cut the row at the header's column starts: BACKLOG is empty while the operator cannot
    # read the pool's Redis (a managed Redis is unreachable from this host).
    starts = [header.index(column) for column in columns] + [len(row)]
    cells = {c: row[a:b].strip() for c, a, b in zip(columns, starts, starts[1:], strict=False)}
    shown = [cells[c] for c in ("NAME", "ENVIRONMENT", "DESIRED", "READY", "STATUS")]
    assert shown[: len(expected_row)] == expected_row
    assert cells["BACKLOG"] in ("", "<none>")


def can_become_ready(kube: Kube, name: str, production: bool) -> bool:
    """Pods become ready only with nodes that run them; production Redis also needs its
    claim bound (the bare test control plane has no storage provisioner)."""
    if not kube.nodes_exist():
        return False
    if not production:
        return True
    claim = kube.must_get("persistentvolumeclaim", f"{name}-redis")
    return bool(
        claim.get("status", {}).get("phase") == "Bound"
        or kube.run("get", "storageclass", "-o", "name").strip()
    )
