"""Record the host state a real node changes, and put it back.

Owns every host-wide side effect of node.py and its undo: the sysctls the kubelet, kube-proxy
and the CNI bridge plugin rewrite (recorded before, restored after); the node's bridge; the
iptables/ip6tables rules and chains added while the node ran (only KUBE-* chains and rules
naming the node's bridge or pod subnet: podman or anyone else may add rules meanwhile); the
network namespaces, mounts, /var/log/containers links and cgroups of the node's pods.
Must not start node components (node.py does) and must not remove anything it cannot tell
was made by this node: undo works from a snapshot taken at start, never by broad names.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HostState", "cgroup_dirs", "snapshot"]

# Values rewritten by the kubelet (setupKernelTunables: vm.overcommit_memory, vm.panic_on_oom,
# kernel.panic, kernel.panic_on_oops, kernel.keys.*), kube-proxy (route_localnet, conntrack
# limits and timeouts, bridge-nf-call) and the CNI bridge plugin (ip_forward).
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/ipv6/conf/all/forwarding",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "net/netfilter/nf_conntrack_tcp_be_liberal",
)
PROC_SYS = Path("/proc/sys")
NETNS_DIR = Path("/run/netns")
CONTAINER_LOGS = Path("/var/log/containers")
CGROUP_FS = Path("/sys/fs/cgroup")
IPTABLES = (("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore"))
# Fixed paths the kubelet and containerd create whatever their configured folders are (the
# device plugin socket, the log links, the pods' network namespaces): removed at stop when
# they did not exist before.
FIXED_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/var/log/pods", str(NETNS_DIR))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _iptables_save(command: str) -> str:
    with contextlib.suppress(OSError):
        result = subprocess.run([command], capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return result.stdout
    return ""


def cgroup_dirs(name: str) -> list[Path]:
    """`name` (a top-level cgroup) in every mounted hierarchy, cgroup v1 and v2 alike."""
    found = []
    for mount in Path("/proc/self/mounts").read_text().splitlines():
        _, target, kind, *_ = mount.split()
        if kind in ("cgroup", "cgroup2") and target.startswith(str(CGROUP_FS)):
            found.append(Path(target) / name)
    return found


@dataclass
class HostState:
    """What the host looked like before the node started; `restore()` makes it so again."""

    bridge: str
    subnet: str
    cgroup: str  # top-level cgroup name holding the node's runtime and pods
    sysctls: dict[str, str] = field(default_factory=dict)
    iptables: dict[str, str] = field(default_factory=dict)
    netns: set[str] = field(default_factory=set)
    log_links: set[str] = field(default_factory=set)
    absent_paths: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ bridge, cgroups

    def create_bridge(self, address: str, prefix: int) -> None:
        """The pods' bridge, made before anything binds to `address` (the API server does)."""
        for command in (
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{address}/{prefix}", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            subprocess.run(command, check=True, capture_output=True)

    def create_cgroups(self) -> None:
        for folder in cgroup_dirs(self.cgroup):
            folder.mkdir(exist_ok=True)
            if (folder.parent / "cpuset.cpus").exists():
                # A cgroup v1 cpuset starts empty and refuses tasks until given CPUs/memory.
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (folder / knob).write_text((folder.parent / knob).read_text())

    def adopt(self, pid: int, child: str) -> None:
        """Move `pid` (containerd) into CGROUP/child so its shims are found and killed later."""
        for folder in cgroup_dirs(self.cgroup):
            target = folder / child
            target.mkdir(exist_ok=True)
            if (folder / "cpuset.cpus").exists():
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (target / knob).write_text((folder / knob).read_text())
            with contextlib.suppress(OSError):
                (target / "cgroup.procs").write_text(str(pid))

    def _cgroup_pids(self) -> set[int]:
        pids: set[int] = set()
        for folder in cgroup_dirs(self.cgroup):
            for procs in folder.rglob("cgroup.procs") if folder.exists() else ():
                text = _read(procs) or ""
                pids.update(int(pid) for pid in text.split())
        return pids

    def kill_cgroup_processes(self, timeout: float = 15.0) -> None:
        """SIGKILL every process of the node's cgroup (containers, shims, containerd)."""
        deadline = time.monotonic() + timeout
        while pids := self._cgroup_pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                self.problems.append(f"processes {sorted(pids)} survived SIGKILL")
                return
            time.sleep(0.1)

    def _remove_cgroups(self) -> None:
        for folder in cgroup_dirs(self.cgroup):
            if not folder.exists():
                continue
            children = sorted(
                (p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
            )
            for path in [*children, folder]:
                deadline = time.monotonic() + 5
                while True:
                    try:
                        path.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError as error:  # EBUSY while the last task exits
                        if time.monotonic() > deadline:
                            self.problems.append(f"cannot remove cgroup {path}: {error}")
                            break
                        time.sleep(0.05)

    # ------------------------------------------------------------ restore

    def restore(self, workdirs: list[Path]) -> list[str]:
        """Undo everything; returns the problems met (empty when the host is back as it was).

        Call after every node process is gone (kill_cgroup_processes and the components' stop).
        """
        self.kill_cgroup_processes()
        self._remove_netns()
        self._unmount_under(workdirs)
        self._remove_log_links(workdirs)
        self._remove_cgroups()
        self._restore_iptables()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        self._restore_sysctls()
        self._remove_fixed_paths()
        return self.problems

    def _remove_fixed_paths(self) -> None:
        for name in self.absent_paths:
            path = Path(name)
            if name == str(NETNS_DIR):
                with contextlib.suppress(OSError):
                    path.rmdir()  # only if empty: a namespace left in it is not ours
            elif path.exists():
                shutil.rmtree(path, ignore_errors=True)

    def _restore_sysctls(self) -> None:
        for key, value in self.sysctls.items():
            if _read(PROC_SYS / key) != value:
                try:
                    (PROC_SYS / key).write_text(value)
                except OSError as error:
                    self.problems.append(f"cannot restore {key}={value}: {error}")

    def _remove_netns(self) -> None:
        # containerd's CRI plugin names the pods' namespaces cni-<uuid> under /run/netns.
        now = set(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else set()
        for name in sorted(now - self.netns):
            if not name.startswith("cni-"):
                continue
            path = NETNS_DIR / name
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
            with contextlib.suppress(OSError):
                path.unlink()

    def _unmount_under(self, workdirs: list[Path]) -> None:
        prefixes = tuple(f"{Path(w).resolve()}/" for w in workdirs)
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            # mountinfo escapes spaces as \040; our folders have none.
            point = line.split()[4]
            if point.startswith(prefixes):
                mounts.append(point)
        for point in sorted(set(mounts), key=lambda p: -p.count("/")):
            result = subprocess.run(["umount", "-l", point], capture_output=True, check=False)
            if result.returncode != 0 and b"not mounted" not in result.stderr:
                self.problems.append(f"cannot unmount {point}: {result.stderr.decode().strip()}")

    def _remove_log_links(self, workdirs: list[Path]) -> None:
        # The kubelet links /var/log/containers/* (a fixed path) to the pods' logs.
        if not CONTAINER_LOGS.exists():
            return
        prefixes = tuple(str(Path(w).resolve()) for w in workdirs)
        for link in CONTAINER_LOGS.iterdir():
            if link.name in self.log_links or not link.is_symlink():
                continue
            if os.readlink(link).startswith(prefixes):
                link.unlink(missing_ok=True)

    def _ours(self, line: str) -> bool:
        words = shlex.split(line)
        names = [w for w in words if w.startswith("KUBE-")]
        return bool(names) or self.bridge in words or self.subnet in line

    def _restore_iptables(self) -> None:
        for save, restore in IPTABLES:
            before = self.iptables.get(save)
            if before is None:
                continue
            script = _undo_script(before, _iptables_save(save), self._ours)
            if not script:
                continue
            result = subprocess.run(
                [restore, "--noflush"], input=script, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                self.problems.append(f"{restore} failed: {result.stderr.strip()}\n{script}")


def _parse(dump: str) -> dict[str, tuple[list[str], list[str]]]:
    """iptables-save output -> {table: (chain names, rule lines)}."""
    tables: dict[str, tuple[list[str], list[str]]] = {}
    table = ""
    for line in dump.splitlines():
        if line.startswith("*"):
            table = line[1:]
            tables[table] = ([], [])
        elif line.startswith(":") and table:
            tables[table][0].append(line[1:].split()[0])
        elif line.startswith("-A ") and table:
            tables[table][1].append(line)
    return tables


def _undo_script(before: str, after: str, ours: object) -> str:
    """An `iptables-restore --noflush` script removing our rules/chains added since `before`."""
    assert callable(ours)
    old, new = _parse(before), _parse(after)
    lines: list[str] = []
    for table, (chains, rules) in new.items():
        old_chains, old_rules = old.get(table, ([], []))
        added_chains = [c for c in chains if c not in old_chains and c.startswith("KUBE-")]
        added_rules = [r for r in rules if r not in old_rules and ours(r)]
        body = []
        # Rules in chains that existed before go one by one; our own chains go whole.
        for rule in added_rules:
            chain = rule.split()[1]
            if chain not in added_chains:
                body.append("-D" + rule[2:])
        body += [f"-F {c}" for c in added_chains] + [f"-X {c}" for c in added_chains]
        if body:
            lines += [f"*{table}", *body, "COMMIT"]
    return "\n".join(lines) + "\n" if lines else ""


def snapshot(bridge: str, subnet: str, cgroup: str) -> HostState:
    """Record sysctls, iptables, network namespaces and log links before the node starts."""
    state = HostState(bridge=bridge, subnet=subnet, cgroup=cgroup)
    for key in SYSCTLS:
        value = _read(PROC_SYS / key)
        if value is not None:
            state.sysctls[key] = value
    for save, _ in IPTABLES:
        state.iptables[save] = _iptables_save(save)
    if NETNS_DIR.exists():
        state.netns = set(os.listdir(NETNS_DIR))
    if CONTAINER_LOGS.exists():
        state.log_links = {p.name for p in CONTAINER_LOGS.iterdir()}
    state.absent_paths = [p for p in FIXED_PATHS if not Path(p).exists()]
    return state
