"""Secrets the operator generates: the Redis password and Flower's basic-auth credentials.

The password is an argument: randomness belongs to the caller (the reconciler creates each
Secret once and never regenerates it; `render` makes throwaway ones). A generated Secret a
user restored by hand is created again, owned, from its data (`build_restored_secret`). Pure;
no I/O, and nothing here may log a value.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

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
        return _secret(pool, owner, component, {REDIS_PASSWORD_KEY: _b64(password)})
    if component == "flower":
        data = {
            FLOWER_USERNAME_KEY: _b64(FLOWER_DEFAULT_USERNAME),
            FLOWER_PASSWORD_KEY: _b64(password),
        }
        return _secret(pool, owner, component, data)
    raise ValueError(f"no generated Secret for component {component!r}")


def build_restored_secret(
    pool: PoolSpec, owner: Owner, component: Component, data: Mapping[str, str]
) -> Json:
    """The generated Secret again, with the data (base64) of a copy a user restored by hand."""
    return _secret(pool, owner, component, dict(data))


def _secret(pool: PoolSpec, owner: Owner, component: Component, data: Json) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": pods.metadata(pool, owner, component),
        "type": "kubernetes.io/basic-auth" if component == "flower" else "Opaque",
        "data": data,
    }
