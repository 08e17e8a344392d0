"""Unit tests do no network I/O: any attempt to open a connection fails the test."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class NetworkInUnitTest(AssertionError):
    """A unit test tried to open a network connection."""


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_self: socket.socket, address: Any) -> None:
        raise NetworkInUnitTest(f"unit test tried to connect to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
