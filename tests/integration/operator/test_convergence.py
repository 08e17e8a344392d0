"""Keeping children converged: scaling, drift repair, rolling on change, idempotence,
deletion through owner references, and an operator restart."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.integration.operator.conftest import (
    Kube,
    Operator,
    all_present,
    children_of,
    pool_manifest,
    resource_versions,
)

pytestmark = pytest.mark.integration

HASH = "workerpool.dev/config-hash"


def create_pool(kube: Kube, name: str = "shop", **spec: Any) -> dict[str, Any]:
    kube.apply(pool_manifest(name, **spec))
    kube.wait(lambda: all_present(kube, children_of(name)), timeout=30, message="children")
    return kube.pool(name)


def worker(kube: Kube, name: str = "shop") -> dict[str, Any]:
    return kube.must_get("deployment", f"{name}-worker")


def template_hash(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["metadata"]["annotations"][HASH])


def test_kubectl_scale_changes_only_the_worker_deployment(kube: Kube) -> None:
    create_pool(kube)
    kube.run("scale", "wp/shop", "--replicas=5")
    kube.wait(lambda: worker(kube)["spec"]["replicas"] == 5, timeout=10, message="5 workers")
    assert kube.must_get("deployment", "shop-beat")["spec"]["replicas"] == 1
    scale = json.loads(kube.run("get", "wp/shop", "--subresource=scale", "-o", "json"))
    assert scale["spec"]["replicas"] == 5
    kube.wait(
        lambda: kube.pool("shop").get("status", {}).get("desiredReplicas") == 5,
        timeout=10,
        message="status.desiredReplicas 5",
    )
    assert scale["status"]["selector"].startswith("app.kubernetes.io/component=worker")


def test_a_deleted_child_is_restored_within_10_seconds(kube: Kube) -> None:
    create_pool(kube)
    old_uid = worker(kube)["metadata"]["uid"]
    started = time.monotonic()
    kube.run("delete", "deployment/shop-worker", "service/shop-flower", "--wait=false")

    def restored() -> bool:
        again = kube.get("deployment", "shop-worker")
        return (
            again is not None
            and again["metadata"]["uid"] != old_uid
            and (kube.get("service", "shop-flower") is not None)
        )

    kube.wait(restored, timeout=10, message="deleted children restored")
    print(f"\ndeleted children restored in {time.monotonic() - started:.2f}s")


def test_a_hand_edited_child_is_restored_within_10_seconds(kube: Kube) -> None:
    create_pool(kube)
    patch = {"spec": {"replicas": 4, "template": {"spec": {"containers": [
        {"name": "celery-worker", "image": "evil:latest"}]}}}}  # fmt: skip
    kube.run("patch", "deployment/shop-worker", "--type=strategic", "-p", json.dumps(patch))

    def restored() -> bool:
        spec = worker(kube)["spec"]
        image = spec["template"]["spec"]["containers"][0]["image"]
        return bool(spec["replicas"] == 1 and image == "shop:1.0")

    kube.wait(restored, timeout=10, message="hand-edited worker restored")


def test_a_deleted_flower_secret_is_regenerated_and_rolls_only_flower(kube: Kube) -> None:
    # The Redis Secret is never regenerated while Redis runs (test_guards.py).
    create_pool(kube)
    flower_before = template_hash(kube.must_get("deployment", "shop-flower"))
    worker_before = template_hash(worker(kube))
    kube.run("delete", "secret/shop-flower")
    kube.wait(
        lambda: kube.get("secret", "shop-flower") is not None
        and template_hash(kube.must_get("deployment", "shop-flower")) != flower_before,
        # Secrets are not watched (no list/watch RBAC on Secrets): the resync notices.
        timeout=12,
        message="new Flower credentials and a new Flower pod template",
    )
    assert template_hash(worker(kube)) == worker_before


def test_a_spec_change_rolls_the_worker_template_only(kube: Kube) -> None:
    create_pool(kube)
    worker_hash = template_hash(worker(kube))
    beat_hash = template_hash(kube.must_get("deployment", "shop-beat"))
    kube.run("patch", "wp/shop", "--type=merge", "-p", '{"spec": {"concurrency": 16}}')
    kube.wait(lambda: template_hash(worker(kube)) != worker_hash, timeout=10, message="new hash")
    command = worker(kube)["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[2:4] == ["--concurrency", "16"]
    assert template_hash(kube.must_get("deployment", "shop-beat")) == beat_hash
    kube.wait(
        lambda: kube.pool("shop")["status"]["observedGeneration"] == 2,
        timeout=10,
        message="observedGeneration 2",
    )


COMPONENTS = ("worker", "beat", "flower", "redis")


def settled(kube: Kube, component: str) -> bool:
    deployment = kube.must_get("deployment", f"shop-{component}")
    status, wanted = deployment.get("status", {}), deployment["spec"]["replicas"]
    conditions = {c["type"] for c in status.get("conditions") or []}
    # With nodes (kwok) pods become ready, which the controller records too.
    ready = status.get("availableReplicas") == wanted if kube.nodes_exist() else True
    return (
        status.get("observedGeneration") == deployment["metadata"]["generation"]
        and status.get("replicas") == wanted
        and status.get("updatedReplicas") == wanted
        and {"Available", "Progressing"} <= conditions
        and ready
    )


def test_applying_the_same_spec_again_changes_no_child(kube: Kube) -> None:
    manifest = pool_manifest("shop")
    create_pool(kube)
    children = children_of("shop")
    # The Deployment controller writes status while it creates the pods: wait until it is
    # done, so that only a write of ours could change a resourceVersion afterwards.
    kube.wait(lambda: all(settled(kube, c) for c in COMPONENTS), timeout=60, message="settled")
    kube.wait(lambda: kube.condition("shop", "Ready") is not None, timeout=10, message="status")
    before = resource_versions(kube, children)
    kube.apply(manifest)
    # Force a full pass deterministically: an annotation change triggers on.update, and
    # kopf records the handled state in its annotation afterwards.
    kube.run("annotate", "wp/shop", "example.com/touch=1")
    kube.wait(
        lambda: "example.com/touch"
        in kube.pool("shop")["metadata"]["annotations"].get(
            "workerpool.dev/last-handled-configuration", ""
        ),
        timeout=10,
        message="the forced pass to finish",
    )
    assert resource_versions(kube, children) == before


def test_deleting_the_pool_deletes_its_children(kube: Kube) -> None:
    create_pool(kube)
    kube.run("delete", "wp/shop", "--wait=false")
    kube.wait(
        lambda: all(kube.get(kind, name) is None for kind, name in children_of("shop")),
        timeout=60,  # the garbage collector's pace
        message="children garbage-collected",
    )


def test_the_operator_converges_after_a_restart(kube: Kube, operator: Operator) -> None:
    create_pool(kube)
    operator.stop()
    try:
        kube.run("scale", "wp/shop", "--replicas=2")
        kube.run("delete", "deployment/shop-flower", "--wait=false")
        kube.run("patch", "deployment/shop-beat", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    finally:
        operator.start()

    def converged() -> bool:
        flower = kube.get("deployment", "shop-flower")
        beat = kube.must_get("deployment", "shop-beat")
        return (
            flower is not None
            and worker(kube)["spec"]["replicas"] == 2
            and beat["spec"]["replicas"] == 1
            and kube.pool("shop")["status"]["observedGeneration"] == 2
        )

    kube.wait(converged, timeout=30, message="convergence after the restart")
