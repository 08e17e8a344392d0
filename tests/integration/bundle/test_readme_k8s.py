"""The README's "Running on Kubernetes" section runs as written, against real API servers.

For each of the four installs it offers (kustomize or Helm, cluster-wide or one namespace), on
a fresh API server with a fake node (kwok): the install block; the operator started locally
from the installed Deployment (its arguments, its ServiceAccount's token), since no kubelet
runs its image; then every block a fake node can serve, in README order; the upgrade and
uninstall blocks of that tool. `kubectl` is the control plane's and `helm` is the real Helm
library behind a thin CLI (helm_cli.py). Blocks that need Docker, a kubelet or metrics-server
(docker, kubectl logs/top/port-forward/exec) are run by tests/e2e/test_kind.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.controlplane.harness import ControlPlane
from tests.controlplane.waiting import wait_for
from tests.integration.bundle import readme
from tests.integration.bundle.bundle import CHART, CRD_NAME, ROOT, LocalOperator, load_values

pytestmark = pytest.mark.integration

INSTALLS = ["kustomize", "kustomize-namespaced", "helm", "helm-namespaced"]
BLOCK_TIMEOUT = 360  # the README waits up to 5 minutes for a pool to be Ready


def k8s_text() -> str:
    return readme.section(readme.README.read_text())


class Shell:
    """bash with the README's tools on PATH, a kubeconfig of its own, from the repo root."""

    def __init__(self, plane: ControlPlane, tmp_path: Path) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "kubectl").symlink_to(plane.kubectl)
        helm = bin_dir / "helm"
        helm.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -m tests.integration.bundle.helm_cli "$@"\n'
        )
        helm.chmod(0o755)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(plane.kubeconfig.read_text())
        home = tmp_path / "home"
        home.mkdir()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")},
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(home),
            "PYTHONPATH": str(ROOT),
        }
        self.transcript: list[str] = []

    def run(self, block: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
        self.transcript.append(
            f"$ {block.strip()}\n[exit {result.returncode}]\n{result.stdout}{result.stderr}"
        )
        return result

    def must(self, block: str) -> str:
        result = self.run(block)
        assert result.returncode == 0, self.tail()
        return result.stdout

    def eventually(self, block: str, timeout: float = 180) -> str:
        """Blocks that read what the operator creates (e.g. the Flower Secret) may need a
        moment; they are idempotent, so they are repeated until they succeed."""

        def attempt() -> subprocess.CompletedProcess[str] | None:
            result = self.run(block)
            return result if result.returncode == 0 else None

        succeeded = wait_for(
            attempt,
            timeout=timeout,
            interval=1,
            message=lambda: f"README block to succeed:\n{self.tail()}",
        )
        assert succeeded is not None  # wait_for returns only a truthy value
        return succeeded.stdout

    def tail(self, entries: int = 6) -> str:
        return "\n\n".join(self.transcript[-entries:])[-6000:]


def wait_for_worker_replicas(plane: ControlPlane, namespace: str, pool: str, replicas: int) -> None:
    """`kubectl scale wp/POOL` reached the worker Deployment: the operator owns its replicas."""

    def current() -> str:
        return plane.kubectl_run(
            "get", "deploy", f"{pool}-worker", "-n", namespace, "-o", "jsonpath={.spec.replicas}"
        ).stdout

    wait_for(
        lambda: current() == str(replicas),
        timeout=60,
        message=lambda: f"{pool}-worker replicas {current()} to become {replicas}",
    )


def test_the_readme_has_the_kubernetes_section_with_all_four_installs() -> None:
    assert sorted(readme.installs(k8s_text())) == sorted(INSTALLS)


def test_every_readme_block_is_run_here_or_by_the_kind_e2e_test() -> None:
    text = k8s_text()
    blocks = readme.fenced(text, "bash")
    installs = [i.block for i in readme.installs(text).values()]
    here = set(installs) | set(readme.usage_blocks(text))
    for tool in ("kustomize", "helm"):
        here |= set(readme.lifecycle_blocks(text, readme.UPGRADE, tool))
        here |= set(readme.lifecycle_blocks(text, readme.UNINSTALL, tool))
    on_kind = {b for b in blocks if readme.needs_a_real_cluster(b)}

    assert set(blocks) == here | on_kind
    assert not here & on_kind
    assert on_kind, "the docker and kubectl logs/top/port-forward blocks"


def test_the_image_names_in_the_readme_are_the_ones_the_manifests_use() -> None:
    text = k8s_text()
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]

    assert f"-t workerpool-operator:{app_version}" in text
    assert f"-t workerpool-runtime:{app_version}" in text
    (dockerfile,) = readme.fenced(text, "dockerfile")
    assert dockerfile.startswith(f"FROM workerpool-runtime:{app_version}\n")
    assert "ENV WORKER_PACKAGES=" in dockerfile
    for path in ("worker_runtime/Dockerfile", "operator/Dockerfile"):
        assert f"-f {path}" in text
        assert (ROOT / path).is_file()
    samples = (ROOT / "manifests" / "samples").glob("*.yaml")
    images = {
        yaml.safe_load(p.read_text())["spec"]["image"]
        for p in samples
        if p.name != "kustomization.yaml"
    }
    for image in images:
        assert f" {image} " in text or f" {image}\n" in text, f"README must build {image}"


def test_the_chart_values_the_readme_sets_are_those_of_the_namespaced_ci_values() -> None:
    """The README's `--set` for one namespace renders what the tested values file renders."""
    helm_namespaced = readme.installs(k8s_text())["helm-namespaced"].block

    assert "--set rbac.clusterWide=false" in helm_namespaced
    assert "--set 'watchNamespaces={workerpool-system}'" in helm_namespaced
    assert load_values("namespaced") == {
        "rbac": {"clusterWide": False},
        "watchNamespaces": ["workerpool-system"],
    }


@pytest.mark.timeout(900)
@pytest.mark.parametrize("install", INSTALLS)
def test_the_readme_install_use_upgrade_and_uninstall_commands_work(
    install: str, private_plane: ControlPlane, tmp_path: Path
) -> None:
    assert private_plane.nodes, "the README test needs the fake node (kwok) to run pods"
    text = k8s_text()
    route = readme.installs(text)[install]
    shell = Shell(private_plane, tmp_path)

    shell.must(route.block)
    operator = LocalOperator.from_cluster(private_plane, tmp_path).start()
    try:
        for block in readme.usage_blocks(text):
            shell.eventually(block)
        for pool, replicas in readme.scaled(readme.usage_blocks(text)).items():
            wait_for_worker_replicas(private_plane, route.namespace, pool, replicas)
        for block in readme.lifecycle_blocks(text, readme.UPGRADE, route.tool):
            shell.must(block)
        for block in readme.lifecycle_blocks(text, readme.UNINSTALL, route.tool):
            shell.must(block)
    finally:
        operator.stop()

    crd = private_plane.kubectl_run("get", "crd", CRD_NAME, check=False)
    assert crd.returncode != 0, "the uninstall leaves no CRD"
    assert "NotFound" in crd.stderr
