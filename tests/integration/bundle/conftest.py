"""Fixtures of the bundle tests: the CRD and the operator namespace installed for real on the
shared test API server, and a private API server for tests that install and uninstall the
whole bundle (cluster-scoped objects such as the CRD must not vanish under other tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.controlplane.harness import ControlPlane, start_control_plane
from tests.integration.bundle.bundle import CRD_NAME, MANIFESTS, install_crd, kustomize, to_yaml


@pytest.fixture(scope="session")
def installed_crd(control_plane: ControlPlane) -> str:
    """Installed once and never deleted: other tests of the session use the same CRD."""
    install_crd(control_plane)
    return CRD_NAME


@pytest.fixture(scope="session")
def operator_namespace(control_plane: ControlPlane) -> str:
    """workerpool-system, created from the kustomize base (with its Pod Security labels)."""
    (namespace,) = [o for o in kustomize(control_plane, MANIFESTS) if o["kind"] == "Namespace"]
    control_plane.kubectl_run("apply", "--server-side", "-f", "-", input=to_yaml([namespace]))
    name: str = namespace["metadata"]["name"]
    return name


@pytest.fixture
def private_plane(control_plane: ControlPlane) -> Iterator[ControlPlane]:
    """A fresh API server (same binaries as the shared one) for this test alone."""
    plane = start_control_plane(control_plane.binaries)
    try:
        yield plane
    finally:
        plane.stop()
