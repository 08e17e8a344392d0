"""Debian's Lua 5.1 interpreter (the Lua version Argo CD's gopher-lua implements), installed
with apt-get when missing, and Python data written as Lua table literals.

Installing is the project's own install step for this test's tool, like the control plane's
build: the package stays installed (nothing to undo on the machine's configuration).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

PACKAGE = "lua5.1"


def interpreter() -> Path:
    """Path to lua5.1, installing the Debian package first if needed."""
    found = shutil.which(PACKAGE)
    if found is None:
        install = ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE]
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            # A fresh machine has no package lists yet.
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
        found = shutil.which(PACKAGE)
    assert found is not None, f"{PACKAGE} is not on PATH after installing it"
    return Path(found)


def literal(value: Any) -> str:
    """A Lua expression for JSON-like `value` (lists become 1-based sequences)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "{" + ", ".join(literal(item) for item in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{literal(k)}] = {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")
