"""`python -m tests.controlplane`: run the test control plane by hand until Ctrl-C/SIGTERM.

Owns the command line only: `--build-only` ensures the binaries (CI runs it before pytest so
the build time is reported on its own) and exits. Shell lines go to stdout, so
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

from tests.controlplane.build import BuildError, ensure_binaries
from tests.controlplane.harness import ControlPlaneError, start_control_plane


def _progress(line: str) -> None:
    print(f"[control plane] {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane", description=__doc__)
    parser.add_argument("--build-only", action="store_true", help="only find/build binaries")
    parser.add_argument(
        "--no-nodes", action="store_true", help="no kube-scheduler/kwok: pods stay Pending"
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


if __name__ == "__main__":
    sys.exit(main())
