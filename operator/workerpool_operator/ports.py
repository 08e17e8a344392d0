"""What a reconcile pass needs from the outside, as Protocols: the Kubernetes API (implemented
by `cluster.Cluster`) and the pools' Redis (`redisload.LoadReader`); unit tests fake both.
Types only: no I/O, no kopf.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from workerpool_operator.load import Reading
from workerpool_operator.model import Json


class Cluster(Protocol):
    """What a pass needs from the API (implemented by `cluster.Cluster`; faked in unit tests)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None: ...
    def get_pool(self, namespace: str, name: str) -> Json | None: ...
    def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> list[Json]: ...
    def apply(self, obj: Mapping[str, Any]) -> Json: ...
    def create(self, obj: Mapping[str, Any]) -> Json | None: ...
    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> None: ...
    def apply_pool_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...
    def annotate(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        annotations: Mapping[str, str | None],
    ) -> None: ...
    def scale(
        self, api_version: str, kind: str, namespace: str, name: str, replicas: int
    ) -> None: ...


class Loads(Protocol):
    """Reads a pool's load from its Redis (implemented by `redisload.LoadReader`)."""

    def read(self, pool: tuple[str, str], url: str, queues: tuple[str, ...]) -> Reading: ...
    def forget(self, pool: tuple[str, str]) -> None: ...
