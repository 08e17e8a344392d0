"""What the operator refuses to do on a real API server, and what it reads from pods.

A Ready pool edited to a spec the runtime would refuse keeps its running children; a foreign
Secret under a generated name is never adopted; a deleted Redis Secret is not regenerated while
Redis runs with its password (queued jobs would be cut off), and a restored one is adopted; a
failing container (pod statuses written here on the kwok node, as a kubelet would) is named in
the pool's status with its last error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.integration.operator.conftest import Kube, all_present, children_of, pool_manifest
from tests.integration.operator.test_invalid import wait_stalled

pytestmark = pytest.mark.integration

HASH = "workerpool.dev/config-hash"


def ready_pool(kube: Kube, **spec: Any) -> None:
    assert kube.nodes_exist(), "these tests need the kwok node to run pods"
    kube.apply(pool_manifest("shop", **spec))
    kube.wait(
        lambda: (kube.condition("shop", "Ready") or {}).get("status") == "True",
        timeout=60,
        message="shop Ready",
    )


def stalled_cleared(kube: Kube) -> bool:
    return (kube.condition("shop", "Stalled") or {}).get("status") == "False"


def versions(kube: Kube) -> dict[str, str]:
    found = {}
    for kind, name in children_of("shop"):
        meta = kube.must_get(kind, name)["metadata"]
        found[f"{kind}/{name}"] = meta["resourceVersion"] if kind != "deployment" else ""
    for component in ("worker", "beat", "flower", "redis"):
        template = kube.must_get("deployment", f"shop-{component}")["spec"]["template"]
        found[f"deployment/shop-{component}"] = template["metadata"]["annotations"][HASH]
    return found


def test_a_ready_pool_edited_to_an_invalid_spec_keeps_its_children_and_stalls(
    kube: Kube,
) -> None:
    ready_pool(kube)
    before = versions(kube)
    kube.apply(pool_manifest("shop", timezone="Mars/Olympus"))  # the API server accepts it
    condition = wait_stalled(kube, "shop", "InvalidSpec")
    assert condition["message"] == (
        "invalid WorkerPool: spec.timezone: 'Mars/Olympus' is not an IANA time zone "
        "(examples: UTC, Europe/Berlin)"
    )
    assert versions(kube) == before  # nothing rolled out, nothing pruned
    kube.apply(pool_manifest("shop"))
    kube.wait(lambda: stalled_cleared(kube), timeout=15, message="Stalled to clear")


def test_a_foreign_secret_under_a_generated_name_is_a_name_conflict(kube: Kube) -> None:
    kube.run("create", "secret", "generic", "shop-redis", "--from-literal=password=theirs")
    kube.apply(pool_manifest("shop"))
    condition = wait_stalled(kube, "shop", "NameConflict")
    assert condition["message"].startswith(
        f"Secret {kube.namespace}/shop-redis exists and is not controlled by WorkerPool shop"
    )
    assert "ownerReferences" not in kube.must_get("secret", "shop-redis")["metadata"]
    assert kube.get("deployment", "shop-worker") is None


def test_a_deleted_redis_secret_stalls_the_pool_until_it_is_restored(kube: Kube) -> None:
    kube.apply(pool_manifest("shop"))
    kube.wait(lambda: all_present(kube, children_of("shop")), timeout=30, message="children")
    password = base64.b64decode(kube.must_get("secret", "shop-redis")["data"]["password"])
    before = versions(kube)
    del before["secret/shop-redis"]

    kube.run("delete", "secret", "shop-redis")
    condition = wait_stalled(kube, "shop", "RedisSecretMissing")
    assert "printenv REDIS_PASSWORD" in condition["message"]
    assert kube.get("secret", "shop-redis") is None  # no new password
    assert kube.get("deployment", "shop-redis") is not None  # Redis keeps its queue

    # The README's restore steps (the password read from the Redis pod in a real cluster).
    kube.run(
        "create", "secret", "generic", "shop-redis", f"--from-literal=password={password.decode()}"
    )
    kube.run("label", "secret", "shop-redis", "app.kubernetes.io/managed-by=workerpool-operator")
    kube.wait(lambda: stalled_cleared(kube), timeout=15, message="Stalled to clear")
    restored = kube.must_get("secret", "shop-redis")["metadata"]
    assert restored["ownerReferences"][0]["uid"] == kube.pool("shop")["metadata"]["uid"]
    after = versions(kube)
    del after["secret/shop-redis"]
    assert after == before  # same password, same hashes: no pod restarted


def worker_pod(kube: Kube) -> str:
    selector = "app.kubernetes.io/instance=shop,app.kubernetes.io/component=worker"
    pods = json.loads(kube.run("get", "pods", "-l", selector, "-o", "json"))["items"]
    return str(pods[0]["metadata"]["name"])


def write_container_status(
    kube: Kube, pod: str, state: dict[str, Any], last: dict[str, Any]
) -> None:
    """What the kubelet writes for a failing container (kwok leaves a Running pod alone)."""
    status = {"status": {
        "conditions": [{"type": "Ready", "status": "False"},
                       {"type": "ContainersReady", "status": "False"}],
        "containerStatuses": [{
            "name": "celery-worker", "image": "shop:1.0", "imageID": "", "ready": False,
            "started": False, "restartCount": 3, "state": state, "lastState": last,
        }],
    }}  # fmt: skip
    kube.run(
        "patch", "pod", pod, "--subresource=status", "--type=strategic", "-p", json.dumps(status)
    )


IMAGE_NOT_FOUND = {
    "waiting": {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "shop:1.0": not found',
    }
}
CRASH_LOOP = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}}
IMPORT_ERROR = {
    "terminated": {
        "exitCode": 1,
        "reason": "Error",
        "message": "Traceback (most recent call last):\n  ...\n"
        "ModuleNotFoundError: No module named 'shop'\n",
    }
}


def test_a_failing_container_is_named_in_the_pools_status(kube: Kube) -> None:
    """An image that does not exist, then a worker package that fails to import."""
    ready_pool(kube)
    pod = worker_pod(kube)
    prefix = f"worker: container celery-worker of pod {pod}"

    write_container_status(kube, pod, IMAGE_NOT_FOUND, {})
    condition = wait_stalled(kube, "shop", "ImagePullBackOff")
    assert condition["message"] == (
        f'{prefix} ImagePullBackOff: Back-off pulling image "shop:1.0": not found'
    )
    assert kube.pool("shop")["status"]["components"]["worker"]["ready"] is False

    write_container_status(kube, pod, CRASH_LOOP, IMPORT_ERROR)
    condition = wait_stalled(kube, "shop", "CrashLoopBackOff")
    assert condition["message"] == (
        f"{prefix} CrashLoopBackOff: exit code 1: ModuleNotFoundError: No module named 'shop'"
    )
