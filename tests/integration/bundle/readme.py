"""The README's "Running on Kubernetes" section as data: its fenced blocks, which of them need a
real kubelet or Docker (run by tests/e2e on kind) and which run against the test API server,
and the role of each (install, upgrade, uninstall, or use). Pure text handling.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"
HEADING = "## Running on Kubernetes"

# kubectl verbs that need a kubelet (or metrics-server) behind the pods: kind only.
NODE_VERBS = frozenset({"logs", "top", "port-forward", "exec", "attach", "cp", "debug"})
# kubectl flags that take a separate value (so the verb is found after them).
_VALUE_FLAGS = frozenset({"-n", "--namespace", "--context", "--kubeconfig", "-l", "--selector"})

INSTALL = re.compile(r"^(helm install |kubectl apply --server-side -k manifests/(?!samples))", re.M)
UPGRADE = re.compile(r"^helm upgrade ", re.M)
UNINSTALL = re.compile(r"^(helm uninstall |kubectl delete .*-k manifests/(?!samples))", re.M)


def section(markdown: str) -> str:
    """The text under HEADING, up to the next level-2 heading."""
    match = re.search(rf"^{re.escape(HEADING)}\s*$(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    if match is None:
        raise AssertionError(f"README.md has no {HEADING!r} section")
    return match.group(1)


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def commands(block: str) -> list[list[str]]:
    """Each command line of a block as tokens (continuations joined, heredoc bodies kept as
    lines of their own, which never start with docker or kubectl)."""
    joined = re.sub(r"\\\n\s*", " ", block)
    found = []
    for line in joined.splitlines():
        tokens = shlex.split(line, comments=True) if line.strip() else []
        if tokens:
            found.append(tokens)
    return found


def kubectl_verb(tokens: list[str]) -> str | None:
    if not tokens or tokens[0] != "kubectl":
        return None
    rest = iter(tokens[1:])
    for token in rest:
        if token in _VALUE_FLAGS:
            next(rest, None)
        elif not token.startswith("-"):
            return token
    return None


def needs_a_real_cluster(block: str) -> bool:
    """Docker, or kubectl verbs a fake node cannot serve: run by the kind e2e test only."""
    return any(
        tokens[0] == "docker" or kubectl_verb(tokens) in NODE_VERBS for tokens in commands(block)
    )


@dataclass(frozen=True)
class Install:
    """One of the install routes the README offers, and what belongs to it."""

    name: str  # kustomize, kustomize-namespaced, helm, helm-namespaced
    block: str
    tool: str  # kustomize or helm
    namespace: str  # where the commands after it run (the kubeconfig context's namespace)


def install_name(block: str) -> str:
    tool = "helm" if block.lstrip().startswith("helm ") else "kustomize"
    return f"{tool}-namespaced" if "namespaced" in block or "watchNamespaces" in block else tool


def installs(text: str) -> dict[str, Install]:
    found = {}
    for block in fenced(text, "bash"):
        if INSTALL.search(block):
            name = install_name(block)
            context = re.search(r"set-context --current --namespace=(\S+)", block)
            found[name] = Install(
                name=name,
                block=block,
                tool=name.split("-")[0],
                namespace=context.group(1) if context else "default",
            )
    return found


def tool_of(block: str) -> str:
    return "helm" if re.search(r"^helm ", block, re.M) else "kustomize"


def usage_blocks(text: str) -> list[str]:
    """Blocks run after any install, in README order: neither install, upgrade nor
    uninstall, and runnable against the test API server."""
    return [
        block
        for block in fenced(text, "bash")
        if not (INSTALL.search(block) or UPGRADE.search(block) or UNINSTALL.search(block))
        and not needs_a_real_cluster(block)
    ]


def lifecycle_blocks(text: str, pattern: re.Pattern[str], tool: str) -> list[str]:
    return [b for b in fenced(text, "bash") if pattern.search(b) and tool_of(b) == tool]


def scaled(blocks: list[str]) -> dict[str, int]:
    """Pool name -> replicas, from the `kubectl scale wp/NAME --replicas=N` commands."""
    found = {}
    for block in blocks:
        for name, replicas in re.findall(r"kubectl scale wp/(\S+) --replicas=(\d+)", block):
            found[name] = int(replicas)
    return found
