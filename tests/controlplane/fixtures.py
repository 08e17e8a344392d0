"""pytest plugin: `control_plane`, `k8s_api` and `k8s_namespace` fixtures.

Owns the pytest wiring of the harness: when the binaries are built, how failures surface, and
per-test namespaces. Must not contain start-up logic (harness.py) or build logic (build.py),
and must never skip: a broken harness fails every test that needs it, with the log tail.

Why the build runs in `pytest_collection_finish` and not in the fixture: pytest-timeout counts
fixture setup against the first test that requests it, and a cold build takes far longer than
the 300 s per-test limit. After collection and before the first test no timer runs, and we
know whether any selected test needs a cluster, so unit-only runs never build. A build error
is kept and raised by the fixture, so it fails those tests instead of aborting the session.
Starting the cluster from cached binaries takes seconds and stays inside the fixture.
"""

from __future__ import annotations

import os
import re
import secrets
import string
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.controlplane.build import Binaries, BuildError, ensure_binaries
from tests.controlplane.waiting import wait_for

# Every pytest run loads this plugin (tests/conftest.py), unit-only runs too: the kubernetes
# client (~2 s) and the harness (cryptography) are imported only when a fixture is used.
if TYPE_CHECKING:
    import kubernetes.client

    from tests.controlplane.harness import ControlPlane
    from tests.controlplane.node import Prepared, RealNode  # noqa: F401 (named in a string below)

__all__ = ["control_plane", "k8s_api", "k8s_namespace", "namespace_name", "real_node"]

CONTROL_PLANE_FIXTURE = "control_plane"
# A real kubelet on containerd (node.py): for tests whose pods must really run.
REAL_NODE_FIXTURE = "real_node"
# Set to 0 to run without kube-scheduler and kwok: no nodes, pods stay Pending.
NODES_ENV = "WORKERPOOL_KUBE_NODES"
_BINARIES = pytest.StashKey[Binaries | BuildError]()
_PREPARED = pytest.StashKey["Prepared | Exception"]()


def _needs_control_plane(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return CONTROL_PLANE_FIXTURE in names or REAL_NODE_FIXTURE in names


def _needs_real_node(item: pytest.Item) -> bool:
    return REAL_NODE_FIXTURE in getattr(item, "fixturenames", ())


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject; repeated so the plugin works under --strict-markers anywhere.
    config.addinivalue_line("markers", "integration: needs real processes (kube-apiserver)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: the marker must exist before `-m` deselection looks at it.
    for item in items:
        if _needs_control_plane(item):
            item.add_marker(pytest.mark.integration)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if config.option.collectonly or not any(_needs_control_plane(i) for i in session.items):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def log(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[control plane] {line}")

    try:
        config.stash[_BINARIES] = ensure_binaries(log)
    except BuildError as error:
        config.stash[_BINARIES] = error
    if any(_needs_real_node(i) for i in session.items):
        # Same reason as the build above: a cold run installs packages, builds kubelet and
        # images for many minutes, which must not count against the first test's timeout.
        from tests.controlplane.node import prepare

        try:
            config.stash[_PREPARED] = prepare(lambda line: log(f"real node: {line}"))
        except Exception as error:  # HostSetupError, BuildError, ImageError: all fail tests
            config.stash[_PREPARED] = error


def _binaries(config: pytest.Config) -> Binaries:
    found = config.stash.get(_BINARIES, None)
    if found is None:
        # Requested dynamically (getfixturevalue): building now counts against the test's
        # timeout, which is fine whenever the cache is warm.
        found = ensure_binaries(lambda _line: None)
    if isinstance(found, BuildError):
        raise found
    return found


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok on 127.0.0.1.

    One session-wide cluster with one fake node (`control_plane.nodes`): pods of a
    Deployment are scheduled, turned Running/Ready by kwok, and `readyReplicas` is real.
    The garbage collector notices a CRD created after start only at its next discovery
    resync (every 30 s, fixed in kube-controller-manager), so the first collection of
    objects owned by such custom objects can take that long.
    """
    from tests.controlplane.harness import ControlPlaneError, start_control_plane

    try:
        binaries = _binaries(request.config)
        plane = start_control_plane(binaries, with_nodes=os.environ.get(NODES_ENV) != "0")
    except (BuildError, ControlPlaneError) as error:
        failure = str(error)
    else:
        failure = ""
    if failure:
        # Outside the except block, so the report shows the log tail once, not twice.
        pytest.fail(f"test control plane unavailable: {failure}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def k8s_api(control_plane: ControlPlane) -> Iterator[kubernetes.client.ApiClient]:
    """A Python client configured from the admin kubeconfig (cluster-admin rights)."""
    import kubernetes.config

    config_file = str(control_plane.kubeconfig)
    client = kubernetes.config.new_client_from_config(config_file=config_file)  # type: ignore[no-untyped-call]
    try:
        yield client
    finally:
        client.close()


_ALPHABET = string.ascii_lowercase + string.digits


def namespace_name(test_name: str) -> str:
    """A unique DNS-1123 label (<= 63 chars) that still says which test made it."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(5))
    base = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-") or "test"
    base = base[: 63 - len(suffix) - 1].rstrip("-")
    return f"{base}-{suffix}"


@pytest.fixture
def k8s_namespace(
    request: pytest.FixtureRequest, k8s_api: kubernetes.client.ApiClient
) -> Iterator[str]:
    """A fresh namespace for one test; deleted afterwards without waiting for it to go."""
    import kubernetes.client
    from kubernetes.client.exceptions import ApiException

    core = kubernetes.client.CoreV1Api(k8s_api)
    name = namespace_name(request.node.name)
    core.create_namespace(
        kubernetes.client.V1Namespace(
            metadata=kubernetes.client.V1ObjectMeta(
                name=name, labels={"workerpool.test/namespace": "true"}
            )
        )
    )
    # Pods are rejected until the controller manager has created the `default`
    # ServiceAccount (admission), which takes milliseconds; waiting here spares every test.
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        interval=0.05,
        message=f"ServiceAccount {name}/default",
        ignore=(ApiException,),
    )
    try:
        yield name
    finally:
        try:
            # The namespace controller finishes the deletion in the background.
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise


@pytest.fixture(scope="session")
def real_node(request: pytest.FixtureRequest) -> Iterator[RealNode]:
    """A control plane of its own with a real node: containerd, kubelet, kube-proxy, CoreDNS,
    metrics-server and local-path-provisioner; the project's images are imported.

    Fails (never skips) when anything is missing: on a fresh machine the collection phase
    installed and built all of it (see pytest_collection_finish).
    """
    from tests.controlplane.node import start_real_node

    failure = ""
    try:
        prepared = request.config.stash.get(_PREPARED, None)
        if isinstance(prepared, Exception):
            raise prepared
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")

        def log(line: str) -> None:
            if reporter is not None:
                reporter.write_line(f"[real node] {line}")

        node = start_real_node(_binaries(request.config), log, prepared)
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
    if failure:
        pytest.fail(f"real node unavailable: {failure}", pytrace=False)
    try:
        yield node
    finally:
        problems = node.stop()
        if problems:
            pytest.fail(f"the real node left the host changed: {problems}", pytrace=False)
