"""`python -m tests.controlplane`: run the test control plane by hand until Ctrl-C/SIGTERM.

Owns the command line only: `--build-only` ensures the binaries (CI runs it before pytest so
the build time is reported on its own) and exits; `--real-node` runs a real kubelet on
containerd (node.py: Debian packages, kubelet and images are installed/built when missing),
with the project's images imported, instead of kwok's simulated node. Shell lines go to stdout, so
`eval "$(python -m tests.controlplane)"` is not possible (it blocks) but copy-paste is; all
progress goes to stderr. Must not duplicate start-up logic of harness.py.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType

from tests.controlplane.build import Binaries, BuildError, ensure_binaries
from tests.controlplane.harness import ControlPlaneError, start_control_plane


def _progress(line: str) -> None:
    print(f"[control plane] {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane", description=__doc__)
    parser.add_argument("--build-only", action="store_true", help="only find/build binaries")
    parser.add_argument(
        "--no-nodes", action="store_true", help="no kube-scheduler/kwok: pods stay Pending"
    )
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="a real kubelet on containerd that runs the project's images (needs root)",
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    # Installed before starting, so a signal during start-up still ends in a clean stop.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    started = time.monotonic()
    try:
        binaries = ensure_binaries(_progress)
    except BuildError as error:
        _progress(str(error))
        return 1
    _progress(
        f"Kubernetes {binaries.version} binaries ({binaries.source}) ready after "
        f"{time.monotonic() - started:.1f}s: {binaries.kube_apiserver.parent}, "
        f"kubectl {binaries.kubectl}, etcd {binaries.etcd}"
    )
    if args.real_node:
        return _run_real_node(binaries, args.build_only, stop)
    if args.build_only or stop.is_set():
        return 0

    try:
        plane = start_control_plane(binaries, with_nodes=not args.no_nodes)
    except ControlPlaneError as error:
        _progress(str(error))
        return 1
    try:
        _progress(f"{plane.server} ready in {plane.startup_seconds:.1f}s; data in {plane.workdir}")
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print(f"export PATH={plane.kubectl.parent}:$PATH", flush=True)
        _progress("press Ctrl-C to stop")
        while not stop.wait(1.0):
            dead = [c for c in plane.components if not c.alive()]
            if dead:
                _progress(f"{dead[0].name} exited:\n{plane.logs_tail()}")
                return 1
    finally:
        plane.stop()
        _progress("stopped")
    return 0


def _run_real_node(binaries: Binaries, build_only: bool, stop: threading.Event) -> int:
    from tests.controlplane.node import NodeError, prepare, start_real_node

    try:
        prepared = prepare(_progress)
        if build_only or stop.is_set():
            return 0
        node = start_real_node(binaries, _progress, prepared)
    except (NodeError, RuntimeError) as error:  # also HostSetupError, BuildError, ImageError
        _progress(str(error))
        return 1
    try:
        _progress(f"real node {node.name} ready: {node.timings}; data in {node.plane.workdir}")
        print(f"export KUBECONFIG={node.plane.kubeconfig}")
        print(f"export PATH={node.plane.kubectl.parent}:$PATH", flush=True)
        _progress(
            "try: kubectl apply --server-side -k manifests/ && kubectl apply -k manifests/samples"
        )
        _progress("press Ctrl-C to stop (the host is restored)")
        while not stop.wait(1.0):
            dead = [c for c in [*node.components, *node.plane.components] if not c.alive()]
            if dead:
                _progress(f"{dead[0].name} exited:\n{node.logs_tail()}")
                return 1
    finally:
        problems = node.stop()
        _progress(f"stopped; host not fully restored: {problems}" if problems else "stopped")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
