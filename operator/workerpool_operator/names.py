"""Names, labels and annotation keys shared by the builders, the status and the shell.

Pure constants and string functions: every child object's name and labels come from here so
the builders, the status (its label selector) and the reconciler (pruning, child events) can
never disagree. Must not import kubernetes or kopf.
"""

from __future__ import annotations

from typing import Final, Literal

GROUP: Final = "workerpool.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "WorkerPool"
PLURAL: Final = "workerpools"

# The operator's identity: SSA field manager and the `managed-by` label value.
OPERATOR: Final = "workerpool-operator"

Component = Literal["worker", "beat", "flower", "redis"]
COMPONENTS: Final[tuple[Component, ...]] = ("worker", "beat", "flower", "redis")

# Container names match the README's troubleshooting commands, e.g.
# `kubectl logs -f deploy/<pool>-worker -c celery-worker`.
CONTAINERS: Final[dict[Component, str]] = {
    "worker": "celery-worker",
    "beat": "celery-beat",
    "flower": "flower",
    "redis": "redis",
}

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
APP_NAME: Final = "workerpool"

# Pod template annotation whose change rolls the pods (rendered config + referenced data).
CONFIG_HASH_ANNOTATION: Final = f"{GROUP}/config-hash"
# Lets `kubectl logs deploy/<pool>-worker` pick the right container without `-c`.
DEFAULT_CONTAINER_ANNOTATION: Final = "kubectl.kubernetes.io/default-container"

FLOWER_PORT: Final = 5555
REDIS_PORT: Final = 6379


def child_name(pool: str, component: Component) -> str:
    """`<pool>-<component>`: the name of every object of one component (Deployment, Service,
    generated Secret, PVC), as the README's commands expect."""
    return f"{pool}-{component}"


def selector_labels(pool: str, component: Component) -> dict[str, str]:
    """The immutable subset used in Deployment selectors and Service selectors."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: pool,
        LABEL_COMPONENT: component,
    }


def labels(pool: str, component: Component) -> dict[str, str]:
    """Standard `app.kubernetes.io/*` labels of a child object and its pods."""
    return {
        **selector_labels(pool, component),
        LABEL_PART_OF: APP_NAME,
        LABEL_MANAGED_BY: OPERATOR,
    }


def selector_string(pool: str, component: Component = "worker") -> str:
    """Label selector in string form (status.selector, for the scale subresource and HPAs)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(pool, component).items()))
