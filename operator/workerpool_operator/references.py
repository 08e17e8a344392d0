"""Which Secrets and ConfigMaps each component of a pool reads, and which keys must exist.

One list drives three things: the reconciler checks that they exist before applying (a
missing one is a Stalled condition naming the spec field), hashes their data into the pod
template so an edit rolls the pods, and creates the generated ones. Pure; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from workerpool_operator.model import PoolSpec
from workerpool_operator.names import Component, child_name

REDIS_PASSWORD_KEY: Final = "password"
FLOWER_USERNAME_KEY: Final = "username"
FLOWER_PASSWORD_KEY: Final = "password"
FLOWER_DEFAULT_USERNAME: Final = "admin"


@dataclass(frozen=True)
class Reference:
    kind: Literal["Secret", "ConfigMap"]
    name: str
    keys: tuple[str, ...]  # keys that must be present; () for a whole-object envFrom
    optional: bool
    field: str  # where the spec asks for it, for messages
    generated: bool = False  # created by the operator once, never regenerated
    holds_redis_url: bool = False  # its key is the runtime's broker URL (checked when read)

    @property
    def identity(self) -> tuple[str, str]:
        return (self.kind, self.name)


def redis_reference(pool: PoolSpec) -> Reference:
    if pool.redis.external_secret is not None:
        return Reference(
            "Secret",
            pool.redis.external_secret,
            (pool.redis.external_key,),
            optional=False,
            field="spec.redis.external.secretName",
            holds_redis_url=True,
        )
    return Reference(
        "Secret",
        child_name(pool.name, "redis"),
        (REDIS_PASSWORD_KEY,),
        optional=False,
        field="spec.redis (generated password)",
        generated=True,
    )


def flower_reference(pool: PoolSpec) -> Reference:
    keys = (FLOWER_USERNAME_KEY, FLOWER_PASSWORD_KEY)
    if pool.flower.credentials_secret is not None:
        return Reference(
            "Secret",
            pool.flower.credentials_secret,
            keys,
            optional=False,
            field="spec.flower.credentialsSecret",
        )
    return Reference(
        "Secret",
        child_name(pool.name, "flower"),
        keys,
        optional=False,
        field="spec.flower (generated credentials)",
        generated=True,
    )


def user_env_references(pool: PoolSpec) -> tuple[Reference, ...]:
    """Secrets and ConfigMaps named in spec.env and spec.envFrom."""
    found: list[Reference] = []
    for i, entry in enumerate(pool.env):
        source = entry.get("valueFrom") or {}
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = source.get(key)
            if ref:
                found.append(
                    Reference(
                        "Secret" if kind == "Secret" else "ConfigMap",
                        str(ref["name"]),
                        (str(ref["key"]),),
                        optional=bool(ref.get("optional", False)),
                        field=f"spec.env[{i}].valueFrom.{key}",
                    )
                )
    for i, entry in enumerate(pool.env_from):
        for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            ref = entry.get(key)
            if ref:
                found.append(
                    Reference(
                        "Secret" if kind == "Secret" else "ConfigMap",
                        str(ref["name"]),
                        (),
                        optional=bool(ref.get("optional", False)),
                        field=f"spec.envFrom[{i}].{key}",
                    )
                )
    return tuple(found)


def component_references(pool: PoolSpec, component: Component) -> tuple[Reference, ...]:
    """What one component's pods read: its config hash covers exactly these."""
    if component == "redis":
        return (redis_reference(pool),)
    app = (redis_reference(pool), *user_env_references(pool))
    if component == "flower":
        return (*app, flower_reference(pool))
    return app


def enabled_components(pool: PoolSpec) -> tuple[Component, ...]:
    components: list[Component] = ["worker"]
    if pool.beat.enabled:
        components.append("beat")
    if pool.flower.enabled:
        components.append("flower")
    if pool.redis.managed:
        components.append("redis")
    return tuple(components)


def all_references(pool: PoolSpec) -> tuple[Reference, ...]:
    """Every reference of every enabled component, each (kind, name, field) once."""
    seen: dict[tuple[str, str, str], Reference] = {}
    for component in enabled_components(pool):
        for ref in component_references(pool, component):
            seen.setdefault((ref.kind, ref.name, ref.field), ref)
    return tuple(seen.values())
