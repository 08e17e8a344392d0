"""Unit tests of the operator: pure functions on plain data, and the reconciler against an
in-memory fake. No network: an autouse fixture makes every socket connection fail."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from workerpool_operator.model import Owner, PoolSpec
from workerpool_operator.spec import parse_pool

OWNER = Owner(name="shop", uid="0b5a6d1e-0000-4000-8000-000000000001")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("unit tests must not open network connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def spec_of(**fields: Any) -> dict[str, Any]:
    """A minimal valid spec with `fields` merged over it (None removes a field)."""
    spec: dict[str, Any] = {"image": "registry.example/shop:1.2.3", "workerPackages": ["shop.jobs"]}
    for key, value in fields.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def make_pool(**fields: Any) -> PoolSpec:
    return parse_pool("shop", "apps", spec_of(**fields))


@pytest.fixture
def pool_factory() -> Callable[..., PoolSpec]:
    return make_pool
