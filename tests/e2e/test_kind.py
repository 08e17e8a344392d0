"""End to end on kind: real images, a real kubelet, real Redis, a job processed.

Builds the runtime and operator images with the README's own `docker build` commands (and the
README's application Dockerfile snippet), loads them into a kind cluster (pytest-kind), installs
the operator with the README's Helm command, applies the preview sample, enqueues a job inside
the worker pod and waits for its result, scales the pool, runs the README commands that need a
kubelet or metrics-server (`kubectl top`, `kubectl logs -f`, `kubectl port-forward` + a Flower
login), deletes the pool and uninstalls. What only this test can prove: the images build and
start under the restricted security context, probes pass on real processes, the workers reach
Redis through the Secret-assembled URL, and Flower's basic auth works.

Needs Docker (and network access for base images, kind and metrics-server). Without a working
Docker the module is skipped, the only skip in the suite. Select it with `-m kind`.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def _docker_unavailable() -> str | None:
    if shutil.which("docker") is None:
        return "`docker` is not installed"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`docker info` failed: {error}"
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines()
        return f"`docker info` failed: {lines[-1] if lines else info.returncode}"
    return None


_UNAVAILABLE = _docker_unavailable()
if _UNAVAILABLE is not None:
    pytest.skip(f"the kind e2e test needs Docker: {_UNAVAILABLE}", allow_module_level=True)

import pytest_kind.cluster  # noqa: E402  (only where Docker works)

from tests.controlplane.waiting import wait_for  # noqa: E402
from tests.integration.bundle import readme  # noqa: E402

pytestmark = pytest.mark.kind

ROOT = Path(__file__).resolve().parents[2]
# kind >= 0.27 runs Kubernetes 1.32 by default; the CRD's CEL rules need 1.29+.
KIND_VERSION = os.environ.get("WORKERPOOL_KIND_VERSION", "v0.27.0")
KUBECTL_VERSION = os.environ.get("WORKERPOOL_KIND_KUBECTL_VERSION", "v1.32.2")
METRICS_SERVER = (
    "https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.7.2/components.yaml"
)
POOL = "examples-preview"
APP_WORKER = '''"""A worker of the README's example application image."""

from worker_runtime import Worker


class EchoWorker(Worker):
    @classmethod
    def perform(cls, text: str) -> str:
        return text
'''


def k8s_text() -> str:
    return readme.section(readme.README.read_text())


class Kind:
    """kubectl/helm/docker against one kind cluster, logging every command."""

    def __init__(self, cluster: pytest_kind.cluster.KindCluster, tmp: Path) -> None:
        self.cluster = cluster
        self.tmp = tmp
        bin_dir = tmp / "bin"
        bin_dir.mkdir(exist_ok=True)
        kubectl = bin_dir / "kubectl"
        if not kubectl.exists():
            cluster.ensure_kubectl()
            kubectl.symlink_to(Path(cluster.kubectl_path).resolve())
        helm = bin_dir / "helm"
        helm.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -m tests.integration.bundle.helm_cli "$@"\n'
        )
        helm.chmod(0o755)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "KUBECONFIG": str(Path(cluster.kubeconfig_path).resolve()),
            "PYTHONPATH": str(ROOT),
        }

    def sh(self, script: str, cwd: Path = ROOT, timeout: float = 900) -> str:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"$ {script}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def kubectl(self, *args: str, timeout: float = 300) -> str:
        return self.sh(shlex.join(["kubectl", *args]), timeout=timeout)

    def background(self, command: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's application: its Dockerfile snippet and a `myapp.workers` package."""
    directory = tmp_path_factory.mktemp("my-app")
    (dockerfile,) = readme.fenced(k8s_text(), "dockerfile")
    (directory / "Dockerfile").write_text(dockerfile)
    package = directory / "myapp" / "workers"
    package.mkdir(parents=True)
    (directory / "myapp" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "echo.py").write_text(APP_WORKER)
    return directory


@pytest.fixture(scope="module")
def kind(tmp_path_factory: pytest.TempPathFactory, app_dir: Path) -> Iterator[Kind]:
    """Images built with the README's commands, and a kind cluster they are loaded into."""
    tmp = tmp_path_factory.mktemp("kind")
    pytest_kind.cluster.KIND_VERSION = KIND_VERSION
    pytest_kind.cluster.KUBECTL_VERSION = KUBECTL_VERSION
    cwd = Path.cwd()
    os.chdir(tmp)  # pytest-kind keeps its binaries under ./.pytest-kind
    try:
        on_path = shutil.which("kind")
        cluster = pytest_kind.cluster.KindCluster(
            "workerpool-e2e",
            kubeconfig=(tmp / "kubeconfig").resolve(),
            kind_path=Path(on_path) if on_path else None,
        )
        cluster.kind_path = cluster.kind_path.resolve()
        cluster.kubectl_path = cluster.kubectl_path.resolve()
        cluster.create()
    finally:
        os.chdir(cwd)
    try:
        runner = Kind(cluster, tmp)
        for block in readme.fenced(k8s_text(), "bash"):
            if block.lstrip().startswith("docker "):
                runner.sh(block, cwd=app_dir if " -f " not in block else ROOT, timeout=1800)
        images = ["workerpool-operator:0.1.0", "workerpool-examples:latest"]
        images.append("registry.example.com/my-app:1.0.0")
        for image in images:
            cluster.load_docker_image(image)
        yield runner
    finally:
        cluster.delete()


@pytest.fixture(scope="module")
def installed(kind: Kind) -> Kind:
    """The operator, installed with the README's cluster-wide Helm command."""
    kind.sh(readme.installs(k8s_text())["helm"].block)
    kind.sh("kubectl -n workerpool-system rollout status deploy/workerpool-operator --timeout=5m")
    return kind


def test_the_application_image_from_the_readme_snippet_imports_its_workers(kind: Kind) -> None:
    out = kind.sh(
        "docker run --rm --read-only --user 10001:10001 --entrypoint python "
        "registry.example.com/my-app:1.0.0 -c "
        "'import os, myapp.workers.echo; print(os.environ[\"WORKER_PACKAGES\"])'"
    )

    assert out.strip() == "myapp.workers"


def test_the_operator_runs_non_root_with_a_healthy_liveness_probe(installed: Kind) -> None:
    pod = json.loads(
        installed.kubectl(
            "-n", "workerpool-system", "get", "pods",
            "-l", "app.kubernetes.io/name=workerpool-operator", "-o", "json",
        )
    )["items"][0]  # fmt: skip
    (status,) = pod["status"]["containerStatuses"]

    assert status["ready"] is True
    assert status["restartCount"] == 0


def test_a_sample_pool_becomes_ready_and_processes_a_job(installed: Kind) -> None:
    installed.kubectl("apply", "-f", "manifests/samples/workerpool-preview.yaml")
    installed.kubectl("wait", "--for=condition=Ready", f"wp/{POOL}", "--timeout=10m", timeout=660)

    script = (
        "import json; "
        "from worker_runtime.examples.data_processing_worker import DataProcessingWorker as W; "
        "print(json.dumps(W.perform_async(user_id=7, processing_options={'e2e': True})"
        ".get(timeout=120)))"
    )
    out = installed.kubectl(
        "exec", f"deploy/{POOL}-worker", "-c", "celery-worker", "--", "python", "-c", script
    )

    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "completed"
    assert result["options"] == {"e2e": True}


def test_scaling_the_pool_scales_its_ready_workers(installed: Kind) -> None:
    installed.kubectl("scale", f"wp/{POOL}", "--replicas=2")
    installed.kubectl("wait", "--for=condition=Ready", f"wp/{POOL}", "--timeout=5m", timeout=360)

    ready = installed.kubectl(
        "get", "deploy", f"{POOL}-worker", "-o", "jsonpath={.status.readyReplicas}"
    )
    assert ready == "2"
    assert installed.kubectl("get", "wp", POOL, "-o", "jsonpath={.status.readyReplicas}") == "2"


def flower_password(kind: Kind) -> str:
    encoded = kind.kubectl("get", "secret", f"{POOL}-flower", "-o", "jsonpath={.data.password}")
    return base64.b64decode(encoded).decode()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def flower_status(port: int, password: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/")
    if password is not None:
        token = base64.b64encode(f"admin:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def follow_logs(kind: Kind, command: list[str], until: str) -> None:
    """`kubectl logs -f` never exits: read until `until` appears, then stop it."""
    process = kind.background(command)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if until in line or time.monotonic() > deadline:
                break
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    assert any(until in line for line in seen), "".join(seen[-20:])


def port_forward_to_flower(kind: Kind, command: list[str]) -> None:
    """`kubectl port-forward svc/NAME-flower 5555`, then log in to Flower through it."""
    process = kind.background(command)
    try:
        wait_for(lambda: port_open(5555), timeout=60, message=shlex.join(command))
        assert flower_status(5555, None) == 401
        assert flower_status(5555, flower_password(kind)) == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def eventually_succeeds(kind: Kind, command: list[str], timeout: float) -> None:
    def attempt() -> bool:
        return (
            subprocess.run(command, env=kind.env, capture_output=True, check=False).returncode == 0
        )

    wait_for(attempt, timeout=timeout, interval=5, message=shlex.join(command))


def test_the_readme_commands_that_need_a_kubelet_work(installed: Kind) -> None:
    installed.kubectl("apply", "-f", METRICS_SERVER)
    installed.kubectl(
        "-n", "kube-system", "patch", "deploy", "metrics-server", "--type=json", "-p",
        '[{"op":"add","path":"/spec/template/spec/containers/0/args/-",'
        '"value":"--kubelet-insecure-tls"}]',
    )  # fmt: skip
    installed.kubectl("-n", "kube-system", "rollout", "status", "deploy/metrics-server")
    blocks = [
        b
        for b in readme.fenced(k8s_text(), "bash")
        if readme.needs_a_real_cluster(b) and not b.lstrip().startswith("docker ")
    ]
    assert blocks

    for block in blocks:
        for tokens in readme.commands(block):
            verb = readme.kubectl_verb(tokens)
            if verb == "port-forward":
                port_forward_to_flower(installed, tokens)
            elif verb == "logs" and "-f" in tokens:
                follow_logs(installed, tokens, until="ready.")
            elif verb == "top":
                # metrics-server needs a scrape or two before it answers.
                eventually_succeeds(installed, tokens, timeout=300)
            else:
                installed.sh(shlex.join(tokens))


def test_deleting_the_pool_removes_its_children(installed: Kind) -> None:
    installed.kubectl("delete", "wp", POOL, "--timeout=3m", timeout=200)

    def children() -> str:
        return installed.kubectl(
            "get", "deploy,svc,secret", "-l", f"app.kubernetes.io/instance={POOL}", "-o", "name"
        )

    wait_for(lambda: children() == "", timeout=180, message=children)


def test_the_readme_uninstall_keeps_the_crd_until_deleted_by_hand(installed: Kind) -> None:
    (uninstall,) = readme.lifecycle_blocks(k8s_text(), readme.UNINSTALL, "helm")

    installed.sh(uninstall)

    # The block itself checks that the CRD survived `helm uninstall`, then deletes it.
    assert "workerpool-operator" not in installed.kubectl("get", "deploy", "-A", "-o", "name")
    assert "workerpools.workerpool.dev" not in installed.kubectl("get", "crd", "-o", "name")
