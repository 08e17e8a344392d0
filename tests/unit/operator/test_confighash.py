"""The config hash on pod templates: what rolls the pods and what does not."""

from __future__ import annotations

from workerpool_operator import builders, names
from workerpool_operator.builders.pods import Digests
from workerpool_operator.confighash import config_hash, digest_data
from workerpool_operator.model import PoolSpec

from tests.unit.operator.conftest import OWNER, make_pool

REDIS = ("Secret", "shop-redis")
FLOWER = ("Secret", "shop-flower")


def hashes(pool: PoolSpec, digests: Digests | None = None) -> dict[str, str]:
    found = {}
    for obj in builders.build_children(pool, OWNER, digests or {}):
        if obj["kind"] == "Deployment":
            annotations = obj["spec"]["template"]["metadata"]["annotations"]
            found[obj["metadata"]["labels"][names.LABEL_COMPONENT]] = annotations[
                names.CONFIG_HASH_ANNOTATION
            ]
    return found


def test_the_same_spec_and_data_give_the_same_hashes() -> None:
    digests = {REDIS: "a", FLOWER: "b"}
    assert hashes(make_pool(), digests) == hashes(make_pool(), digests)


def test_a_worker_setting_rolls_only_the_worker() -> None:
    before, after = hashes(make_pool()), hashes(make_pool(concurrency=16))
    assert before["worker"] != after["worker"]
    assert {k: v for k, v in before.items() if k != "worker"} == {
        k: v for k, v in after.items() if k != "worker"
    }


def test_a_new_redis_password_rolls_every_component() -> None:
    before = hashes(make_pool(), {REDIS: "a", FLOWER: "b"})
    after = hashes(make_pool(), {REDIS: "changed", FLOWER: "b"})
    assert all(before[c] != after[c] for c in ("worker", "beat", "flower", "redis"))


def test_new_flower_credentials_roll_only_flower() -> None:
    before = hashes(make_pool(), {REDIS: "a", FLOWER: "b"})
    after = hashes(make_pool(), {REDIS: "a", FLOWER: "changed"})
    assert [c for c in before if before[c] != after[c]] == ["flower"]


def test_data_of_secrets_named_in_env_from_is_hashed() -> None:
    pool = make_pool(envFrom=[{"secretRef": {"name": "app-secrets"}}])
    before = hashes(pool, {("Secret", "app-secrets"): "v1"})
    after = hashes(pool, {("Secret", "app-secrets"): "v2"})
    assert before["worker"] != after["worker"]
    assert before["redis"] == after["redis"]


def test_the_hash_covers_the_template_without_itself() -> None:
    worker = builders.build_children(make_pool(), OWNER, {})[-1]
    template = worker["spec"]["template"]
    annotations = dict(template["metadata"]["annotations"])
    recorded = annotations.pop(names.CONFIG_HASH_ANNOTATION)
    stripped = {**template, "metadata": {**template["metadata"], "annotations": annotations}}
    inputs = {"Secret/shop-redis": "unknown"}
    assert config_hash(stripped, inputs) == recorded


def test_data_digests_ignore_key_order_and_never_contain_the_data() -> None:
    digest = digest_data({"a": "c2VjcmV0", "b": "eA=="})
    assert digest == digest_data({"b": "eA==", "a": "c2VjcmV0"})
    assert "c2VjcmV0" not in digest
    assert digest != digest_data({"a": "c2VjcmV0", "b": "eQ=="})
