"""Secrets the operator generates: the Redis password and Flower's basic-auth credentials.

The password is an argument: randomness belongs to the caller (the reconciler creates each
Secret once and never regenerates it; `render` makes throwaway ones). A generated Secret a
user restored by hand is adopted with `build_secret_adoption`, which carries no data. Pure;
no I/O, and nothing here may log a value.
"""

from __future__ import annotations

import base64

from workerpool_operator.builders import pods
from workerpool_operator.model import Json, Owner, PoolSpec
from workerpool_operator.names import Component
from workerpool_operator.references import (
    FLOWER_DEFAULT_USERNAME,
    FLOWER_PASSWORD_KEY,
    FLOWER_USERNAME_KEY,
    REDIS_PASSWORD_KEY,
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def build_generated_secret(
    pool: PoolSpec, owner: Owner, component: Component, password: str
) -> Json:
    """`<pool>-redis` (key password) or `<pool>-flower` (basic-auth username/password)."""
    if component == "redis":
        secret_type, data = "Opaque", {REDIS_PASSWORD_KEY: _b64(password)}
    elif component == "flower":
        secret_type = "kubernetes.io/basic-auth"
        data = {
            FLOWER_USERNAME_KEY: _b64(FLOWER_DEFAULT_USERNAME),
            FLOWER_PASSWORD_KEY: _b64(password),
        }
    else:
        raise ValueError(f"no generated Secret for component {component!r}")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": pods.metadata(pool, owner, component),
        "type": secret_type,
        "data": data,
    }


def build_secret_adoption(pool: PoolSpec, owner: Owner, component: Component) -> Json:
    """Metadata only (labels, owner reference): applied to a restored generated Secret, it
    makes the pool its controller again and leaves the data the user restored untouched."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": pods.metadata(pool, owner, component)}
