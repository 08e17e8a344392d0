"""Pieces shared by every pod the pool runs: metadata, security, environment, Deployment.

Every pod is "restricted" (Pod Security Standards): non-root, read-only root filesystem, no
privilege escalation, all capabilities dropped, seccomp RuntimeDefault; /tmp is an emptyDir
because the root filesystem is read-only and the heartbeat files live there.
Pure: returns plain dicts; must not import kubernetes or kopf.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Final

from workerpool_operator import names
from workerpool_operator.confighash import UNKNOWN, config_hash
from workerpool_operator.model import Json, Owner, PodSettings, PoolSpec, Resources
from workerpool_operator.names import Component
from workerpool_operator.references import REDIS_PASSWORD_KEY, component_references

# Heartbeats for `workerpool health` ($WORKERPOOL_STATE_DIR), on the /tmp emptyDir.
STATE_DIR: Final = "/tmp/workerpool"
TMP_VOLUME: Final = "tmp"
# A crashed container's last log lines become its termination message, which the operator
# puts in the pool's status (diagnosis.py): "ModuleNotFoundError: ..." instead of "Error".
TERMINATION_MESSAGE_POLICY: Final = "FallbackToLogsOnError"
# Input digests keyed by ("Secret" | "ConfigMap", name), read by the reconciler.
Digests = Mapping[tuple[str, str], str]


def metadata(pool: PoolSpec, owner: Owner, component: Component) -> Json:
    return {
        "name": names.child_name(pool.name, component),
        "namespace": pool.namespace,
        "labels": names.labels(pool.name, component),
        "ownerReferences": [owner.reference()],
    }


def pod_security_context(uid: int, gid: int, fs_group: int) -> Json:
    return {
        "runAsNonRoot": True,
        # Explicit numeric ids: kubelet cannot verify runAsNonRoot for a named image USER.
        "runAsUser": uid,
        "runAsGroup": gid,
        "fsGroup": fs_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Json:
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def secret_env(var: str, secret: str, key: str) -> Json:
    """An env var read from a Secret key: the value never appears in the pod spec."""
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def broker_env(pool: PoolSpec) -> list[Json]:
    """CELERY_BROKER_URL / CELERY_RESULT_BACKEND, never with a literal password in the spec."""
    if pool.redis.external_secret is not None:
        return [
            secret_env(var, pool.redis.external_secret, pool.redis.external_key)
            for var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
        ]
    host = names.child_name(pool.name, "redis")
    # $(REDIS_PASSWORD) is Kubernetes' dependent variable expansion: the URL is assembled by
    # the kubelet, so the password exists only in the Secret. Generated passwords are
    # URL-safe (secrets.token_urlsafe), so no percent-encoding is needed.
    url = f"redis://:$(REDIS_PASSWORD)@{host}:{names.REDIS_PORT}/0"
    return [
        secret_env("REDIS_PASSWORD", host, REDIS_PASSWORD_KEY),
        {"name": "CELERY_BROKER_URL", "value": url},
        {"name": "CELERY_RESULT_BACKEND", "value": url},
    ]


def app_env(pool: PoolSpec) -> list[Json]:
    """Environment of the worker, beat and Flower containers: the runtime's contract first,
    then the user's entries (which may reference the former as $(NAME))."""
    return [
        *broker_env(pool),
        {"name": "WORKER_PACKAGES", "value": ",".join(pool.worker_packages)},
        {"name": "WORKERPOOL_TIMEZONE", "value": pool.timezone},
        {"name": "WORKERPOOL_LOG_FORMAT", "value": pool.log_format},
        {"name": "WORKERPOOL_STATE_DIR", "value": STATE_DIR},
        # Libraries that cache under ~ need a writable HOME on a read-only root filesystem.
        {"name": "HOME", "value": "/tmp"},
        *(copy.deepcopy(dict(entry)) for entry in pool.env),
    ]


def app_container(
    pool: PoolSpec, component: Component, command: list[str], resources: Resources
) -> Json:
    container: Json = {"name": names.CONTAINERS[component], "image": pool.image}
    if pool.image_pull_policy is not None:
        container["imagePullPolicy"] = pool.image_pull_policy
    container |= {
        "command": command,
        "env": app_env(pool),
        "resources": resources.to_k8s(),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
        "terminationMessagePolicy": TERMINATION_MESSAGE_POLICY,
    }
    if pool.env_from:
        container["envFrom"] = [copy.deepcopy(dict(entry)) for entry in pool.env_from]
    return container


def scheduling(pod: PodSettings) -> Json:
    """Node selection and pull secrets, the same for every pod of the pool."""
    spec: Json = {}
    if pod.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in pod.image_pull_secrets]
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        spec["tolerations"] = [copy.deepcopy(dict(t)) for t in pod.tolerations]
    if pod.affinity:
        spec["affinity"] = copy.deepcopy(dict(pod.affinity))
    return spec


def app_pod_spec(pool: PoolSpec, container: Json, grace_seconds: int) -> Json:
    pod = pool.pod
    spec: Json = {
        "automountServiceAccountToken": pod.automount_service_account_token,
        # Service links would inject <SVC>_PORT variables for every Service in the namespace.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_seconds,
        "securityContext": pod_security_context(pod.run_as_user, pod.run_as_group, pod.fs_group),
        **scheduling(pod),
        "containers": [container],
        # sizeLimit: a runaway job writing temp files gets its pod evicted, not the node filled.
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if pod.service_account_name is not None:
        spec["serviceAccountName"] = pod.service_account_name
    return spec


def health_probes(component: Component) -> Json:
    """Exec probes on the heartbeat file: unlike `celery inspect ping`, they put no broadcast
    traffic on the broker and do not fail because another worker is slow."""

    def probe(max_age: int, period: int, failures: int) -> Json:
        command = ["workerpool", "health", "--component", component, "--max-age", str(max_age)]
        return {
            "exec": {"command": command},
            "periodSeconds": period,
            # Each check starts a Python process; give it time on a busy node.
            "timeoutSeconds": 10,
            "failureThreshold": failures,
        }

    return {
        # Boot (imports, broker connection) may take up to 3 minutes before liveness starts.
        "startupProbe": probe(60, period=5, failures=36),
        "readinessProbe": probe(30, period=10, failures=3),
        "livenessProbe": probe(120, period=30, failures=3),
    }


def deployment(
    pool: PoolSpec,
    owner: Owner,
    component: Component,
    *,
    replicas: int,
    strategy: Json,
    pod_spec: Json,
    digests: Digests,
) -> Json:
    """A Deployment whose pod template carries the config hash of itself and its inputs."""
    template: Json = {
        "metadata": {
            "labels": names.labels(pool.name, component),
            "annotations": {
                **pool.pod.annotations,
                names.DEFAULT_CONTAINER_ANNOTATION: names.CONTAINERS[component],
            },
        },
        "spec": pod_spec,
    }
    inputs = {
        f"{ref.kind}/{ref.name}": digests.get(ref.identity, UNKNOWN)
        for ref in component_references(pool, component)
    }
    template["metadata"]["annotations"][names.CONFIG_HASH_ANNOTATION] = config_hash(
        template, inputs
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(pool, owner, component),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": names.selector_labels(pool.name, component)},
            "strategy": strategy,
            "template": template,
        },
    }


def cluster_ip_service(
    pool: PoolSpec, owner: Owner, component: Component, port_name: str, port: int
) -> Json:
    """A ClusterIP Service for one component, targeting its container port by name."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(pool, owner, component),
        "spec": {
            "type": "ClusterIP",
            "selector": names.selector_labels(pool.name, component),
            "ports": [{"name": port_name, "port": port, "targetPort": port_name}],
        },
    }
