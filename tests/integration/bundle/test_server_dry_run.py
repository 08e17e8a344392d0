"""Every object of the bundle is accepted by a real API server: server-side dry-run apply runs
the server's schema validation, defaulting and admission (Pod Security included) without
persisting anything. The CRD and the operator namespace are installed for real first, because
a dry-run of a WorkerPool needs its CRD, and of a namespaced object its namespace.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml

from tests.controlplane.harness import ControlPlane
from tests.integration.bundle.bundle import (
    CHART,
    MANIFESTS,
    NAMESPACED_OVERLAY,
    SAMPLES,
    kustomize,
    load_values,
    render_chart,
    render_chart_files,
    to_yaml,
)

pytestmark = pytest.mark.integration


def dry_run(
    plane: ControlPlane, objects: Sequence[Mapping[str, Any]], *extra: str
) -> tuple[str, str]:
    result = plane.kubectl_run(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=bundle-dry-run",
        "-f",
        "-",
        *extra,
        input=to_yaml(objects),
    )
    return result.stdout, result.stderr


def assert_accepted(stdout: str, stderr: str, count: int) -> None:
    accepted = [line for line in stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == count, stdout + stderr
    # "Warning: would violate PodSecurity ..." and deprecation warnings land on stderr.
    assert "Warning" not in stderr, stderr


@pytest.mark.usefixtures("installed_crd", "operator_namespace")
def test_the_kustomize_base_is_accepted_by_the_api_server(control_plane: ControlPlane) -> None:
    objects = kustomize(control_plane, MANIFESTS)

    assert_accepted(*dry_run(control_plane, objects), count=len(objects))


@pytest.mark.usefixtures("installed_crd", "operator_namespace")
def test_the_namespaced_variant_is_accepted_by_the_api_server(control_plane: ControlPlane) -> None:
    objects = kustomize(control_plane, NAMESPACED_OVERLAY)

    assert_accepted(*dry_run(control_plane, objects), count=len(objects))


@pytest.mark.usefixtures("installed_crd", "operator_namespace")
def test_the_default_helm_render_and_its_crd_are_accepted_by_the_api_server(
    control_plane: ControlPlane,
) -> None:
    crds = [yaml.safe_load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))]
    objects = [*crds, *render_chart()]

    assert_accepted(*dry_run(control_plane, objects), count=len(objects))


@pytest.mark.usefixtures("installed_crd", "operator_namespace")
def test_the_namespaced_helm_render_is_accepted_by_the_api_server(
    control_plane: ControlPlane,
) -> None:
    objects = render_chart(load_values("namespaced"))

    assert_accepted(*dry_run(control_plane, objects), count=len(objects))


@pytest.mark.usefixtures("installed_crd")
def test_the_sample_workerpools_are_valid(control_plane: ControlPlane, k8s_namespace: str) -> None:
    objects = kustomize(control_plane, SAMPLES)

    assert_accepted(*dry_run(control_plane, objects, "-n", k8s_namespace), count=len(objects))


@pytest.mark.usefixtures("installed_crd")
def test_the_workerpool_in_the_chart_notes_is_valid(
    control_plane: ControlPlane, k8s_namespace: str
) -> None:
    notes = render_chart_files()["workerpool-operator/templates/NOTES.txt"]
    match = re.search(r"<<'YAML'.*?\n(.*?)\n\s*YAML\n", notes, flags=re.S)
    assert match is not None, notes
    pool = yaml.safe_load(textwrap.dedent(match.group(1)))

    assert_accepted(*dry_run(control_plane, [pool], "-n", k8s_namespace), count=1)


@pytest.mark.usefixtures("installed_crd", "operator_namespace")
def test_a_pod_breaking_the_restricted_standard_would_be_reported(
    control_plane: ControlPlane,
) -> None:
    """The check above is meaningful: the namespace's Pod Security labels do warn."""
    objects = kustomize(control_plane, MANIFESTS)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    del deployment["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]

    _, stderr = dry_run(control_plane, [deployment])

    assert "would violate PodSecurity" in stderr
