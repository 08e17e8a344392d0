"""Build the container images the real node runs, without any registry.

Owns: the stand-in base images made by debootstrap from Debian packages (Python for the
project's Dockerfiles, Redis under the operator's default Redis image name), the pause image
compiled from Kubernetes' pause.c, the podman builds of the UNMODIFIED project Dockerfiles
(only build arguments differ: the base image name), the example application image FROM the
runtime image, and the OCI archives `node.py` imports into containerd. Every image is rebuilt
only when a hash of its inputs (context files, build arguments, base image) changes; archives
and podman's storage live in `$XDG_CACHE_HOME/workerpool/images/`.

Must not start containerd or touch the cluster (node.py imports the archives), and must not
change the host's podman storage, networks or iptables: podman runs with its own storage root
and builds use the host network, so no CNI bridge or NAT rule is created.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.controlplane.build import _cache_base, log_tail

__all__ = [
    "APP_IMAGE",
    "OPERATOR_IMAGE",
    "PAUSE_IMAGE",
    "REDIS_IMAGE",
    "RUNTIME_IMAGE",
    "ImageError",
    "Images",
    "ensure_images",
]

REPO = Path(__file__).resolve().parents[2]
# Names the shipped manifests, samples and chart use, so they run unchanged with
# imagePullPolicy IfNotPresent. Fully qualified: containerd stores normalised names.
RUNTIME_IMAGE = "localhost/workerpool-runtime:0.1.0"
OPERATOR_IMAGE = "docker.io/library/workerpool-operator:0.1.0"
APP_IMAGE = "docker.io/library/workerpool-examples:latest"
# The operator's default Redis image (profiles.DEFAULT_REDIS_IMAGE); a Debian stand-in.
REDIS_IMAGE = "docker.io/library/redis:7.4-alpine"
PAUSE_IMAGE = "localhost/workerpool-pause:3.10"
PYTHON_STANDIN = "localhost/workerpool-python-standin:3.11-bookworm"

# Part of every project image's input hash: bump it when the way images are built changes, so
# images built the old way are not taken as fresh.
BUILD_RECIPE = "podman build --no-cache"

# The README's build context: the repository root, trimmed by .dockerignore to these paths.
PROJECT_CONTEXT = ("pyproject.toml", "README.md", "worker_runtime", "operator/workerpool_operator")
APP_CONTEXT = REPO / "tests" / "e2e" / "app"
SUITE = "bookworm"
PYTHON_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
REDIS_PACKAGES = ("redis-server", "redis-tools")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_PIP_CONF = Path("/etc/pip.conf")

Log = Callable[[str], None]


class ImageError(RuntimeError):
    """An image could not be built; the message names it and carries the log tail."""


@dataclass(frozen=True)
class Images:
    """OCI archives to import into containerd, by image name."""

    archives: dict[str, Path]
    timings: dict[str, float] = field(default_factory=dict)
    sizes_mb: dict[str, float] = field(default_factory=dict)


def cache_dir() -> Path:
    return _cache_base() / "images"


def _podman() -> list[str]:
    base = cache_dir()
    # Own storage: the user's podman images are neither used nor touched. runc because crun
    # refuses the hybrid cgroup v1 layout of CI VMs; no systemd, hence cgroupfs and file events.
    return [
        "podman",
        "--root",
        str(base / "podman-root"),
        "--runroot",
        str(Path(tempfile.gettempdir()) / "workerpool-podman-run"),
        "--runtime",
        "/usr/bin/runc",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
    ]


def _run(command: list[str], log_file: Path, what: str, stdin: IO[bytes] | None = None) -> None:
    with log_file.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        completed = subprocess.run(
            command,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            check=False,
        )
    if completed.returncode != 0:
        raise ImageError(
            f"{what} failed (exit {completed.returncode}); log {log_file}:\n{log_tail(log_file)}"
        )


def _hash_files(paths: Iterable[Path], root: Path, digest: hashlib._Hash) -> None:
    for top in paths:
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in files:
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")


def _inputs_hash(*parts: str, files: Iterable[Path] = (), root: Path = REPO) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0")
    _hash_files(files, root, digest)
    return digest.hexdigest()[:16]


def _mirror() -> str:
    """The Debian archive apt uses on this host (deb822 or one-line sources)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        # Disabled files (e.g. `*.disabled`) and third-party repositories are not Debian.
        if not source.is_file() or source.suffix not in (".list", ".sources"):
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            if words[:1] not in (["URIs:"], ["deb"]):
                continue
            for uri in (w for w in words[1:] if "://" in w):
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return "http://deb.debian.org/debian"


class _Builder:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.base = cache_dir()
        self.base.mkdir(parents=True, exist_ok=True)
        self.log_file = self.base / "build.log"
        self.podman = _podman()
        self.timings: dict[str, float] = {}
        self.hashes: dict[str, str] = {}

    def archive(self, name: str) -> Path:
        safe = name.replace("/", "_").replace(":", "_")
        return self.base / f"{safe}.oci.tar"

    def _stamp(self, name: str) -> Path:
        return self.archive(name).with_suffix(".inputs")

    def fresh(self, name: str, inputs: str) -> bool:
        stamp = self._stamp(name)
        return self.archive(name).exists() and stamp.exists() and stamp.read_text() == inputs

    def save(self, name: str, inputs: str, started: float) -> None:
        archive = self.archive(name)
        partial = archive.with_name(archive.name + ".partial")
        partial.unlink(missing_ok=True)
        command = [*self.podman, "save", "--format", "oci-archive", "-o", str(partial), name]
        _run(command, self.log_file, f"podman save {name}")
        os.replace(partial, archive)
        self._stamp(name).write_text(inputs)
        self.timings[name] = round(time.monotonic() - started, 1)

    # ------------------------------------------------------------ stand-in base images

    def rootfs_image(
        self, name: str, packages: tuple[str, ...], changes: list[str], python: bool = False
    ) -> str:
        """A Debian minbase rootfs with `packages`, imported into podman as `name`.

        `python`: set it up like the python:slim images (see _customise).
        """
        mirror = _mirror()
        host_files = (HOST_CA_BUNDLE, HOST_PIP_CONF) if python else ()
        copied = [p for p in host_files if p.exists()]
        inputs = _inputs_hash(SUITE, mirror, *packages, *changes, files=copied, root=Path("/"))
        self.hashes[name] = inputs
        if self.fresh(name, inputs):
            return inputs
        started = time.monotonic()
        self.log(f"debootstrap {SUITE} {','.join(packages)} for {name} (log: {self.log_file})")
        debs = self.base / "debootstrap-debs"
        debs.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.base, prefix="rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            command = [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(packages)}",
                f"--cache-dir={debs}",
                SUITE,
                str(rootfs),
                mirror,
            ]
            _run(command, self.log_file, f"debootstrap for {name}")
            if python:
                _customise(rootfs)
            # Caches and docs are dead weight in an image (python:slim drops them too).
            for junk in (
                "var/cache/apt/archives",
                "var/lib/apt/lists",
                "usr/share/doc",
                "usr/share/man",
                "usr/share/locale",
            ):
                shutil.rmtree(rootfs / junk, ignore_errors=True)
            tar = subprocess.Popen(
                ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
            )
            flags = [f"--change={change}" for change in changes]
            _run(
                [*self.podman, "import", *flags, "-", name],
                self.log_file,
                f"podman import {name}",
                stdin=tar.stdout,
            )
            tar.wait()
        self.save(name, inputs, started)
        return inputs

    # ------------------------------------------------------------ builds

    def build(
        self,
        name: str,
        dockerfile: Path,
        context: Path,
        files: Iterable[Path],
        args: dict[str, str],
        tags: tuple[str, ...] = (),
    ) -> str:
        """`podman build` of an unmodified Dockerfile; only `args` are ours."""
        base_hashes = sorted(self.hashes.values())
        inputs = _inputs_hash(
            BUILD_RECIPE,
            json.dumps(args, sort_keys=True),
            *base_hashes,
            files=[dockerfile, *files],
        )
        self.hashes[name] = inputs
        if self.fresh(name, inputs):
            return inputs
        started = time.monotonic()
        self.log(f"podman build {name} from {dockerfile.relative_to(REPO)}")
        command = [
            *self.podman,
            "build",
            "--file", str(dockerfile),
            # No layer cache: buildah 1.28 keys `RUN --mount=type=bind,from=builder` on the
            # command text only, so a changed wheel was not reinstalled and a stale operator
            # shipped. This build only runs when the inputs' hash changed anyway.
            "--no-cache",
            # Host network: no podman bridge, no NAT rules; pip reaches PyPI as the host does.
            "--network", "host",
            # The image's own limits would exceed this VM's hard limits (no CAP_SYS_RESOURCE).
            "--ulimit", "nofile=1024:1024",
            "--ulimit", "nproc=4096:4096",
            *[f"--build-arg={key}={value}" for key, value in args.items()],
            "--tag", name,
            *[f"--tag={tag}" for tag in tags],
            str(context),
        ]  # fmt: skip
        _run(command, self.log_file, f"podman build {name}")
        self.save(name, inputs, started)
        return inputs

    def pause(self, source: Path) -> None:
        inputs = _inputs_hash(files=[source], root=source.parent)
        self.hashes[PAUSE_IMAGE] = inputs
        if self.fresh(PAUSE_IMAGE, inputs):
            return
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=self.base, prefix="pause-") as tmp:
            context = Path(tmp)
            _run(
                [
                    "gcc",
                    "-Os",
                    "-static",
                    "-Wall",
                    "-DVERSION=workerpool",
                    "-o",
                    str(context / "pause"),
                    str(source),
                ],
                self.log_file,
                "gcc pause.c",
            )
            _run(["strip", str(context / "pause")], self.log_file, "strip pause")
            (context / "Containerfile").write_text(
                'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'
            )
            _run(
                [*self.podman, "build", "--network", "none", "--tag", PAUSE_IMAGE, str(context)],
                self.log_file,
                "podman build pause",
            )
        self.save(PAUSE_IMAGE, inputs, started)

    def size_mb(self, name: str) -> float:
        result = subprocess.run(
            [*self.podman, "image", "inspect", "--format", "{{.Size}}", name],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            return round(int(result.stdout.strip()) / 1e6, 1)
        except ValueError:
            return -1.0


def _customise(rootfs: Path) -> None:
    """Make Debian's Python behave like the python:slim image's for `pip install`."""
    (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    local_bin = rootfs / "usr/local/bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    if (rootfs / "usr/bin/python3").exists():
        for link, target in (
            ("python", "/usr/bin/python3"),
            ("python3", "/usr/bin/python3"),
            ("pip", "/usr/bin/pip3"),
            ("pip3", "/usr/bin/pip3"),
        ):
            (local_bin / link).unlink(missing_ok=True)
            (local_bin / link).symlink_to(target)
    # The intercepting proxy's CA and pip's settings, so builds that run pip work here.
    if HOST_CA_BUNDLE.exists():
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    if HOST_PIP_CONF.exists():
        shutil.copyfile(HOST_PIP_CONF, rootfs / "etc/pip.conf")


def ensure_images(pause_source: Path, log: Log = print) -> Images:
    """Build what changed (minutes the first time, ~1 s when nothing did)."""
    if shutil.which("podman") is None:
        raise ImageError("podman is missing: run tests.controlplane.hostsetup first")
    builder = _Builder(log)
    builder.pause(pause_source)
    python_env = ["ENV LANG=C.UTF-8", 'CMD ["python3"]']
    builder.rootfs_image(PYTHON_STANDIN, PYTHON_PACKAGES, python_env, python=True)
    # The official image runs redis-server as uid 999; the pod sets that uid itself.
    builder.rootfs_image(REDIS_IMAGE, REDIS_PACKAGES, ['CMD ["redis-server"]'])
    context = [REPO / path for path in PROJECT_CONTEXT]
    python = {"PYTHON_IMAGE": PYTHON_STANDIN}
    builder.build(RUNTIME_IMAGE, REPO / "worker_runtime/Dockerfile", REPO, context, python)
    builder.build(OPERATOR_IMAGE, REPO / "operator/Dockerfile", REPO, context, python)
    app_files = [p for p in APP_CONTEXT.rglob("*") if p.is_file()]
    builder.build(
        APP_IMAGE,
        APP_CONTEXT / "Dockerfile",
        APP_CONTEXT,
        app_files,
        {"RUNTIME_IMAGE": RUNTIME_IMAGE},
    )
    names = [PAUSE_IMAGE, REDIS_IMAGE, OPERATOR_IMAGE, APP_IMAGE, PYTHON_STANDIN]
    return Images(
        archives={name: builder.archive(name) for name in names},
        timings=builder.timings,
        sizes_mb={name: builder.size_mb(name) for name in names} if builder.timings else {},
    )
