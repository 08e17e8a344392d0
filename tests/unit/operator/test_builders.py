"""The builders: what objects a WorkerPool becomes, for both profiles and with overrides."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from workerpool_operator import builders, names
from workerpool_operator.model import Json, PoolSpec

from tests.unit.operator.conftest import OWNER, make_pool


def children(pool: PoolSpec) -> list[Json]:
    return builders.build_children(pool, OWNER, digests={})


def by_kind_name(objects: list[Json]) -> dict[tuple[str, str], Json]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def deployment(pool: PoolSpec, component: names.Component) -> Json:
    return by_kind_name(children(pool))[("Deployment", f"shop-{component}")]


def container(pool: PoolSpec, component: names.Component) -> Json:
    (only,) = deployment(pool, component)["spec"]["template"]["spec"]["containers"]
    found: Json = only
    return found


def env_of(c: Json) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_a_preview_pool_is_redis_flower_beat_and_worker() -> None:
    assert [(o["kind"], o["metadata"]["name"]) for o in children(make_pool())] == [
        ("Service", "shop-redis"),
        ("PodDisruptionBudget", "shop-redis"),
        ("Deployment", "shop-redis"),
        ("Service", "shop-flower"),
        ("Deployment", "shop-flower"),
        ("Deployment", "shop-beat"),
        ("Deployment", "shop-worker"),
    ]


def test_a_production_pool_adds_a_volume_claim_for_redis() -> None:
    objects = by_kind_name(children(make_pool(environment="production")))
    claim = objects[("PersistentVolumeClaim", "shop-redis")]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("environment", ["preview", "production"])
def test_every_child_is_owned_by_the_pool_and_labelled(environment: str) -> None:
    for obj in children(make_pool(environment=environment)):
        meta = obj["metadata"]
        assert meta["namespace"] == "apps"
        if obj["kind"] == "PersistentVolumeClaim":
            assert "ownerReferences" not in meta  # retained by default, see below
            continue
        assert meta["ownerReferences"] == [OWNER.reference()]
        assert meta["ownerReferences"][0]["controller"] is True
        assert meta["labels"][names.LABEL_INSTANCE] == "shop"
        assert meta["labels"][names.LABEL_MANAGED_BY] == "workerpool-operator"
        assert meta["labels"][names.LABEL_NAME] == "workerpool"


@pytest.mark.parametrize(
    ("component", "container_name"),
    [
        ("worker", "celery-worker"),
        ("beat", "celery-beat"),
        ("flower", "flower"),
        ("redis", "redis"),
    ],
)
def test_container_names_match_the_original_troubleshooting_commands(
    component: names.Component, container_name: str
) -> None:
    pool = make_pool()
    assert container(pool, component)["name"] == container_name
    annotations = deployment(pool, component)["spec"]["template"]["metadata"]["annotations"]
    assert annotations[names.DEFAULT_CONTAINER_ANNOTATION] == container_name


@pytest.mark.parametrize(
    ("environment", "replicas", "cpu", "memory"),
    [("preview", 1, "200m", "512Mi"), ("production", 3, "500m", "1Gi")],
)
def test_the_worker_follows_the_profile(
    environment: str, replicas: int, cpu: str, memory: str
) -> None:
    pool = make_pool(environment=environment)
    worker = deployment(pool, "worker")
    assert worker["spec"]["replicas"] == replicas
    assert container(pool, "worker")["resources"]["requests"] == {"cpu": cpu, "memory": memory}
    assert container(pool, "worker")["command"] == [
        "workerpool", "worker", "--concurrency", "8",
        "--queues", "critical,default,low", "--loglevel", "INFO",
    ]  # fmt: skip


def test_the_worker_uses_explicit_concurrency_queues_and_replicas() -> None:
    pool = make_pool(replicas=5, concurrency=3, queues=["critical", "low"], logLevel="DEBUG")
    assert deployment(pool, "worker")["spec"]["replicas"] == 5
    command = container(pool, "worker")["command"]
    assert command[2:] == ["--concurrency", "3", "--queues", "critical,low", "--loglevel", "DEBUG"]


def test_job_limits_from_the_spec_are_rendered_into_the_worker_command() -> None:
    pool = make_pool(
        jobLimits={
            "timeLimitSeconds": 300,
            "softTimeLimitSeconds": 240,
            "maxTasksPerChild": 1000,
            "maxMemoryPerChild": "400Mi",
        }
    )
    assert container(pool, "worker")["command"][8:] == [
        "--time-limit", "300", "--soft-time-limit", "240",
        "--max-tasks-per-child", "1000", "--max-memory-per-child", str(400 * 1024),
    ]  # fmt: skip
    # One limit alone renders alone; none renders the command as before (above).
    alone = make_pool(jobLimits={"softTimeLimitSeconds": 60})
    assert container(alone, "worker")["command"][8:] == ["--soft-time-limit", "60"]


def test_worker_rollouts_never_lose_capacity_and_allow_a_warm_shutdown() -> None:
    pool = make_pool(terminationGracePeriodSeconds=900)
    spec = deployment(pool, "worker")["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] == 900


def test_beat_is_always_one_replica_recreated() -> None:
    spec = deployment(make_pool(replicas=7), "beat")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert container(make_pool(), "beat")["command"] == ["workerpool", "beat", "--loglevel", "INFO"]


def test_flower_is_served_on_5555_with_basic_auth_from_the_generated_secret() -> None:
    pool = make_pool()
    service = by_kind_name(children(pool))[("Service", "shop-flower")]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 5555, "targetPort": "http"}]
    assert service["spec"]["selector"] == names.selector_labels("shop", "flower")
    flower = container(pool, "flower")
    assert flower["command"] == ["workerpool", "flower", "--port", "5555", "--address", "0.0.0.0"]
    env = env_of(flower)
    assert env["FLOWER_BASIC_AUTH"] == "$(WORKERPOOL_FLOWER_USERNAME):$(WORKERPOOL_FLOWER_PASSWORD)"
    assert env["WORKERPOOL_FLOWER_PASSWORD"]["secretKeyRef"] == {
        "name": "shop-flower",
        "key": "password",
    }


def test_flower_uses_given_credentials_instead_of_generating_them() -> None:
    pool = make_pool(flower={"credentialsSecret": "ops-flower"})
    assert env_of(container(pool, "flower"))["WORKERPOOL_FLOWER_USERNAME"]["secretKeyRef"] == {
        "name": "ops-flower",
        "key": "username",
    }
    assert builders.generated_secret_components(pool) == ("redis",)


def test_app_containers_get_the_runtime_environment_contract() -> None:
    pool = make_pool(timezone="Europe/Berlin", logFormat="json")
    env = env_of(container(pool, "worker"))
    assert env["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "shop-redis", "key": "password"}}
    assert env["CELERY_BROKER_URL"] == "redis://:$(REDIS_PASSWORD)@shop-redis:6379/0"
    assert env["CELERY_RESULT_BACKEND"] == env["CELERY_BROKER_URL"]
    assert env["WORKER_PACKAGES"] == "shop.jobs"
    assert env["WORKERPOOL_TIMEZONE"] == "Europe/Berlin"
    assert env["WORKERPOOL_LOG_FORMAT"] == "json"
    assert env["WORKERPOOL_STATE_DIR"] == "/tmp/workerpool"
    names_in_order = [e["name"] for e in container(pool, "worker")["env"]]
    # Dependent expansion only sees variables defined earlier.
    assert names_in_order.index("REDIS_PASSWORD") < names_in_order.index("CELERY_BROKER_URL")


def test_user_env_and_env_from_come_after_the_operators_variables() -> None:
    pool = make_pool(
        env=[{"name": "SENTRY_DSN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "dsn"}}}],
        envFrom=[{"configMapRef": {"name": "app-config"}}],
    )
    for component in ("worker", "beat", "flower"):
        c = container(pool, component)
        order = [e["name"] for e in c["env"]]
        assert order.index("SENTRY_DSN") > order.index("WORKERPOOL_STATE_DIR")
        assert c["envFrom"] == [{"configMapRef": {"name": "app-config"}}]


def test_an_external_redis_replaces_the_managed_one() -> None:
    pool = make_pool(redis={"external": {"secretName": "redis-url", "key": "uri"}})
    kinds = {(o["kind"], o["metadata"]["name"]) for o in children(pool)}
    assert not {k for k in kinds if k[1] == "shop-redis"}
    env = env_of(container(pool, "worker"))
    assert "REDIS_PASSWORD" not in env
    assert env["CELERY_BROKER_URL"] == {"secretKeyRef": {"name": "redis-url", "key": "uri"}}
    assert builders.generated_secret_components(pool) == ("flower",)


def test_production_redis_appends_to_a_file_on_the_claim() -> None:
    pool = make_pool(environment="production")
    redis = container(pool, "redis")
    assert redis["command"][-2:] == ["--appendonly", "yes"]
    assert "--requirepass" in redis["command"]
    volumes = deployment(pool, "redis")["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "data", "persistentVolumeClaim": {"claimName": "shop-redis"}}]
    assert deployment(pool, "redis")["spec"]["strategy"] == {"type": "Recreate"}


def test_preview_redis_keeps_nothing_on_disk() -> None:
    pool = make_pool()
    assert container(pool, "redis")["command"][-4:] == ["--appendonly", "no", "--save", ""]
    volumes = deployment(pool, "redis")["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "data", "emptyDir": {}}]


def all_pods(pool: PoolSpec) -> Iterator[tuple[str, Json]]:
    for obj in children(pool):
        if obj["kind"] == "Deployment":
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("environment", ["preview", "production"])
def test_every_pod_is_restricted_and_sized(environment: str) -> None:
    for name, pod in all_pods(make_pool(environment=environment)):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod["containers"]:
            context = c["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            for part in ("requests", "limits"):
                assert set(c["resources"][part]) >= {"cpu", "memory"}, name
            assert {"livenessProbe", "readinessProbe", "startupProbe"} <= set(c), name
            # A crash's last log lines reach the pool's status (diagnosis.py).
            assert c["terminationMessagePolicy"] == "FallbackToLogsOnError", name


def test_no_probe_broadcasts_celery_inspect_ping() -> None:
    text = yaml.safe_dump(children(make_pool()))
    assert "inspect" not in text


@pytest.mark.parametrize("component", ["worker", "beat"])
def test_worker_and_beat_probes_check_their_heartbeat(component: names.Component) -> None:
    c = container(make_pool(), component)
    assert c["livenessProbe"]["exec"]["command"][:4] == [
        "workerpool",
        "health",
        "--component",
        component,
    ]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_flower_and_redis_probes_use_http_and_redis_cli() -> None:
    assert container(make_pool(), "flower")["readinessProbe"]["httpGet"] == {
        "path": "/healthcheck",
        "port": "http",
    }
    assert (
        "redis-cli ping" in container(make_pool(), "redis")["livenessProbe"]["exec"]["command"][-1]
    )


def test_disabled_components_are_not_built() -> None:
    pool = make_pool(beat={"enabled": False}, flower={"enabled": False})
    assert {o["metadata"]["name"] for o in children(pool)} == {"shop-redis", "shop-worker"}
    assert builders.generated_secret_components(pool) == ("redis",)


def test_scheduling_knobs_reach_every_app_pod() -> None:
    toleration = {"key": "dedicated", "operator": "Equal", "value": "jobs", "effect": "NoSchedule"}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "pool", "operator": "In", "values": ["jobs"]}]}]}}}  # fmt: skip
    pool = make_pool(
        nodeSelector={"pool": "jobs"},
        tolerations=[toleration],
        affinity=affinity,
        podAnnotations={"example.com/team": "payments"},
        serviceAccountName="jobs",
        automountServiceAccountToken=True,
        imagePullSecrets=[{"name": "registry"}],
        imagePullPolicy="Always",
    )
    for component in ("worker", "beat", "flower"):
        template = deployment(pool, component)["spec"]["template"]
        pod = template["spec"]
        assert pod["nodeSelector"] == {"pool": "jobs"}
        assert pod["tolerations"] == [toleration]
        assert pod["affinity"] == affinity
        assert pod["serviceAccountName"] == "jobs"
        assert pod["automountServiceAccountToken"] is True
        assert pod["imagePullSecrets"] == [{"name": "registry"}]
        assert pod["containers"][0]["imagePullPolicy"] == "Always"
        assert template["metadata"]["annotations"]["example.com/team"] == "payments"
    # Redis needs no API token whatever the app pods get.
    assert (
        deployment(pool, "redis")["spec"]["template"]["spec"]["automountServiceAccountToken"]
        is False
    )


def test_builders_are_deterministic_and_share_no_mutable_parts() -> None:
    pool = make_pool(environment="production", tolerations=[{"operator": "Exists"}])
    first, second = children(pool), children(pool)
    assert first == second
    # yaml emits anchors for objects referenced twice: there must be none.
    assert "&id" not in yaml.safe_dump(first)
    first[-1]["spec"]["template"]["spec"]["tolerations"][0]["operator"] = "Equal"
    assert pool.pod.tolerations[0]["operator"] == "Exists"


def test_generated_secrets_hold_the_given_password() -> None:
    pool = make_pool()
    redis = builders.build_generated_secret(pool, OWNER, "redis", "s3cret")
    flower = builders.build_generated_secret(pool, OWNER, "flower", "pa55")
    assert base64.b64decode(redis["data"]["password"]) == b"s3cret"
    assert flower["type"] == "kubernetes.io/basic-auth"
    assert base64.b64decode(flower["data"]["username"]) == b"admin"
    assert (redis["metadata"]["name"], flower["metadata"]["name"]) == ("shop-redis", "shop-flower")
    with pytest.raises(ValueError, match="no generated Secret"):
        builders.build_generated_secret(pool, OWNER, "worker", "x")


def test_prunable_children_cover_every_deployment_service_and_generated_secret() -> None:
    assert builders.prunable_children("shop") == [
        ("apps/v1", "Deployment", "shop-worker"),
        ("apps/v1", "Deployment", "shop-beat"),
        ("apps/v1", "Deployment", "shop-flower"),
        ("apps/v1", "Deployment", "shop-redis"),
        ("v1", "Service", "shop-flower"),
        ("v1", "Service", "shop-redis"),
        ("v1", "Secret", "shop-flower"),
        ("v1", "Secret", "shop-redis"),
        ("policy/v1", "PodDisruptionBudget", "shop-worker"),
        ("policy/v1", "PodDisruptionBudget", "shop-redis"),
    ]


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


@pytest.mark.parametrize(
    ("environment", "limit", "maxmemory"),
    [("preview", "256Mi", 192 * 2**20), ("production", "1Gi", 768 * 2**20)],
)
def test_redis_refuses_writes_a_margin_below_its_memory_limit(
    environment: str, limit: str, maxmemory: int
) -> None:
    """Issue 23: without maxmemory a backlog got Redis OOM-killed and it came back empty."""
    redis = container(make_pool(environment=environment), "redis")
    assert redis["resources"]["limits"]["memory"] == limit
    assert int(option(redis["command"], "--maxmemory")) == maxmemory
    # noeviction: a full Redis refuses writes; it never drops a queued or scheduled job.
    assert option(redis["command"], "--maxmemory-policy") == "noeviction"


def test_maxmemory_follows_an_explicit_redis_memory_limit() -> None:
    resources = {"limits": {"memory": "1Ei"}, "requests": {"memory": "1Gi"}}
    pool = make_pool(redis={"resources": resources})
    assert int(option(container(pool, "redis")["command"], "--maxmemory")) == 3 * 2**60 // 4


def test_the_redis_claim_is_retained_by_default_and_owned_on_request() -> None:
    """Issue 23: deleting the pool deleted the claim (and, with a Delete reclaim policy, the
    disk) through its owner reference."""
    kept = by_kind_name(children(make_pool(environment="production")))
    assert "ownerReferences" not in kept[("PersistentVolumeClaim", "shop-redis")]["metadata"]
    redis = {"persistence": {"whenDeleted": "Delete"}}
    deleted = by_kind_name(children(make_pool(environment="production", redis=redis)))
    claim = deleted[("PersistentVolumeClaim", "shop-redis")]["metadata"]
    assert claim["ownerReferences"] == [OWNER.reference()]


def test_redis_has_a_budget_no_eviction_may_spend() -> None:
    budget = by_kind_name(children(make_pool()))[("PodDisruptionBudget", "shop-redis")]
    assert budget["spec"]["maxUnavailable"] == 0
    assert budget["spec"]["selector"]["matchLabels"] == names.selector_labels("shop", "redis")


def test_production_workers_are_evicted_one_at_a_time_preview_ones_freely() -> None:
    production = by_kind_name(children(make_pool(environment="production")))
    budget = production[("PodDisruptionBudget", "shop-worker")]
    assert budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == names.selector_labels("shop", "worker")
    assert ("PodDisruptionBudget", "shop-worker") not in by_kind_name(children(make_pool()))


def test_an_external_redis_has_no_budget() -> None:
    pool = make_pool(redis={"external": {"secretName": "redis-url"}})
    assert ("PodDisruptionBudget", "shop-redis") not in by_kind_name(children(pool))
