"""Install the Debian packages a real node needs, when they are missing.

Owns the list of host packages (container runtime, CNI plugins, image builder, rootfs tools,
packet filter tools, and the Prometheus the e2e tests scrape the operator with) and the
`apt-get` calls (the browser tests install Debian's chromium through `ensure_packages` too).
Must not start anything, configure anything or touch a package that is already installed:
when everything is present it only runs `dpkg-query` once (tens of milliseconds). Root is
required to install; a missing package as non-root is an error that names the packages and
the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

__all__ = [
    "HOST_PACKAGES",
    "HostSetupError",
    "ensure_host_packages",
    "ensure_packages",
    "missing_packages",
]

# Debian package -> why the real node needs it.
HOST_PACKAGES = {
    "containerd": "container runtime the kubelet talks to (CRI)",
    # crun refuses the hybrid cgroup v1 layout of these VMs; runc 1.1 works.
    "runc": "OCI runtime used by containerd and podman",
    "containernetworking-plugins": "bridge/host-local/portmap/loopback CNI plugins",
    "podman": "builds the project's Dockerfiles without a daemon or registry",
    "buildah": "podman's build engine",
    "debootstrap": "builds the stand-in base images from Debian packages",
    "iptables": "kube-proxy's packet rules and the bridge plugin's masquerading",
    "conntrack": "kube-proxy flushes stale UDP (DNS) flows with it",
    "gcc": "compiles the pause container (pause.c) statically",
    "libc6-dev": "static libc for pause.c",
    # Also promtool (tests/integration/monitoring). The tests run their own process; on a host
    # with systemd, Debian's package also starts its own service (port 9090) when installed.
    "prometheus": "a real Prometheus scrapes the in-cluster operator and runs its alert rules",
}

Log = Callable[[str], None]


class HostSetupError(RuntimeError):
    """Packages are missing and could not be installed; the message says which and why."""


def missing_packages(names: list[str] | None = None) -> list[str]:
    """The packages of `names` (default: all of HOST_PACKAGES) dpkg does not list as installed."""
    wanted = list(HOST_PACKAGES) if names is None else names
    if shutil.which("dpkg-query") is None:
        raise HostSetupError("no dpkg-query: the real node needs a Debian-based host")
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *wanted],
        capture_output=True,
        text=True,
        check=False,  # exit 1 when some package is unknown: that is the answer we want
    )
    installed = {
        line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")
    }
    return [name for name in wanted if name not in installed]


def _apt(args: list[str], log_file: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Several test sessions may install at once: wait for dpkg's lock instead of failing.
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args]
    with open(log_file, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        completed = subprocess.run(
            command, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )
    if completed.returncode != 0:
        with open(log_file) as handle:
            tail = "".join(handle.readlines()[-20:])
        raise HostSetupError(f"`apt-get {args[0]}` failed (log {log_file}):\n{tail}")


def ensure_host_packages(log: Log = print, log_file: str = "/tmp/workerpool-apt.log") -> float:
    """Install whatever of HOST_PACKAGES is missing; return the seconds spent (0 if none)."""
    return ensure_packages(list(HOST_PACKAGES), "the real node", log, log_file)


def ensure_packages(
    names: list[str],
    needed_by: str,
    log: Log = print,
    log_file: str = "/tmp/workerpool-apt.log",
) -> float:
    """Install whatever of `names` is missing; return the seconds spent (0 if none)."""
    missing = missing_packages(names)
    if not missing:
        return 0.0
    if os.geteuid() != 0:
        raise HostSetupError(
            f"{needed_by} needs Debian packages {' '.join(missing)}: "
            f"run `sudo apt-get install -y {' '.join(missing)}` or run the tests as root"
        )
    started = time.monotonic()
    log(f"installing Debian packages {' '.join(missing)} (log: {log_file})")
    _apt(["update", "-q"], log_file)
    # No recommends: podman would pull in slirp4netns, fuse-overlayfs, dbus, ... none of
    # which a rootful, daemonless build needs.
    _apt(["install", "-y", "-q", "--no-install-recommends", *missing], log_file)
    still = missing_packages(missing)
    if still:
        raise HostSetupError(f"apt-get did not install {' '.join(still)} (log: {log_file})")
    return time.monotonic() - started
