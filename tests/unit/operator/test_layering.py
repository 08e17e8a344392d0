"""The functional core stays pure and exactly one module talks to the Kubernetes API.

Checked on the source (ast), so it holds without running import-linter."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "operator" / "workerpool_operator"
MODULES = sorted(PACKAGE.rglob("*.py"))
# The imperative shell: everything else must be pure.
SHELL = {"cluster.py", "reconcile.py", "handlers.py", "cli.py", "__init__.py"}
IO_PACKAGES = {"kubernetes", "kopf", "urllib3", "requests", "redis", "celery", "socket"}


def imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.name not in SHELL or p.parent.name == "builders"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)  # fmt: skip
def test_pure_modules_import_nothing_that_does_io(path: Path) -> None:
    assert not imported(path) & IO_PACKAGES


def test_only_the_cluster_module_imports_the_kubernetes_client() -> None:
    users = {p.name for p in MODULES if "kubernetes" in imported(p) or "urllib3" in imported(p)}
    assert users == {"cluster.py"}


def test_only_the_handlers_speak_kopf() -> None:
    # errors.py holds the vocabulary; handlers.py alone turns it into kopf's retry semantics.
    users = {p.name for p in MODULES if "kopf" in imported(p)}
    assert users == {"handlers.py", "cli.py"}


def test_the_operator_folder_is_not_a_package() -> None:
    # An importable `operator` would shadow the standard library (STYLE.md).
    assert not (PACKAGE.parent / "__init__.py").exists()


def test_every_module_says_what_it_is_for() -> None:
    for path in MODULES:
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, f"{path.name} has no module docstring"
