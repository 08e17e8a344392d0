"""What import-linter cannot check about the operator package's layout.

Which module may import what (the pure core imports no Kubernetes/Kopf/Redis/Celery, only
`cluster` imports the Kubernetes client, only the handlers and the CLI import Kopf, the layer
order) is enforced on the whole import graph by the import-linter contracts in pyproject.toml
(`make lint`), not here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "operator" / "workerpool_operator"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_operator_folder_is_not_a_package() -> None:
    # An importable `operator` would shadow the standard library module of that name.
    assert not (PACKAGE.parent / "__init__.py").exists()


def test_every_module_says_what_it_is_for() -> None:
    for path in MODULES:
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, f"{path.name} has no module docstring"
