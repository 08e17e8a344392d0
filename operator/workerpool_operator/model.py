"""The resolved WorkerPool: frozen dataclasses that the builders and the status consume.

Every value here is final: profile defaults are already applied and cross-field rules already
checked (spec.py does that). Holds no parsing, no defaults and no I/O; must not import
kubernetes or kopf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# One Kubernetes object as plain JSON-like data; the builders' output type.
Json = dict[str, Any]

Environment = Literal["preview", "production"]
# What deleting the pool does to the Redis volume claim, as a StatefulSet's
# persistentVolumeClaimRetentionPolicy.whenDeleted: Retain (no owner reference) or Delete.
VolumeRetention = Literal["Retain", "Delete"]


@dataclass(frozen=True)
class Resources:
    """requests/limits of one container, quantities as strings (e.g. {"cpu": "500m"})."""

    requests: Mapping[str, str]
    limits: Mapping[str, str]

    def to_k8s(self) -> Json:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


@dataclass(frozen=True)
class BeatSpec:
    enabled: bool
    resources: Resources


@dataclass(frozen=True)
class FlowerSpec:
    enabled: bool
    resources: Resources
    # A user-provided Secret with `username`/`password`; None means "generate NAME-flower".
    credentials_secret: str | None


@dataclass(frozen=True)
class RedisSpec:
    # External: the URL comes from a user's Secret and nothing below `image` is used.
    external_secret: str | None
    external_key: str
    image: str
    resources: Resources
    persistence: bool
    storage_size: str
    storage_class: str | None
    volume_when_deleted: VolumeRetention = "Retain"

    @property
    def managed(self) -> bool:
        return self.external_secret is None


@dataclass(frozen=True)
class PodSettings:
    """Scheduling and identity knobs shared by every pod of the pool."""

    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    affinity: Mapping[str, Any] | None
    annotations: Mapping[str, str]
    service_account_name: str | None
    automount_service_account_token: bool
    image_pull_secrets: tuple[str, ...]
    run_as_user: int
    run_as_group: int
    fs_group: int


@dataclass(frozen=True)
class AutoscalingSpec:
    """spec.autoscaling (autoscale.py applies it); exclusive with an explicit spec.replicas."""

    min_replicas: int
    max_replicas: int
    jobs_per_worker: int
    scale_down_stabilization_seconds: int


@dataclass(frozen=True)
class JobLimits:
    """`spec.jobLimits`, as the worker command's options take them; 0 for none."""

    time_limit: int = 0
    soft_time_limit: int = 0
    max_tasks_per_child: int = 0
    max_memory_per_child_kib: int = 0


@dataclass(frozen=True)
class PoolSpec:
    name: str
    namespace: str
    environment: Environment
    image: str
    image_pull_policy: str | None
    worker_packages: tuple[str, ...]
    replicas: int
    concurrency: int
    queues: tuple[str, ...]
    resources: Resources
    # core/v1 EnvVar / EnvFromSource entries, passed through to the containers unchanged.
    env: tuple[Mapping[str, Any], ...]
    env_from: tuple[Mapping[str, Any], ...]
    timezone: str
    log_level: str
    log_format: str
    termination_grace_period_seconds: int
    beat: BeatSpec
    flower: FlowerSpec
    redis: RedisSpec
    pod: PodSettings
    # None: `replicas` (explicit or the profile's) is the worker count.
    autoscaling: AutoscalingSpec | None = None
    job_limits: JobLimits = JobLimits()


@dataclass(frozen=True)
class Owner:
    """The WorkerPool that owns every child; passed explicitly to each builder."""

    name: str
    uid: str
    api_version: str = "workerpool.dev/v1alpha1"
    kind: str = "WorkerPool"

    def reference(self) -> Json:
        # controller=True: `kubectl describe` shows "Controlled By", and the garbage collector
        # deletes the children with the pool. blockOwnerDeletion makes foreground deletion wait.
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
