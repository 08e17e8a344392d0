"""The lowest versions pyproject.toml allows for the libraries the runtime leans on, as pip pins:
`python -m tests.min_versions` prints `celery==5.7.0 kombu==5.7.0 redis==6.4.0`.

`make min-versions` installs those into a second venv, checks with `--check` that they are
what it runs with, and runs a few runtime integration tests there, so a floor the code has
outgrown (kombu 5.5 lacked `_flush_brpop_reauth`, issue 22) fails in CI instead of for a user.
Read from pyproject.toml, so the floors cannot drift from it.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

#: Libraries whose private or recent APIs the runtime uses (broker/intake.py, app.py).
PINNED = ("celery", "kombu", "redis")

_FLOOR = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*(?P<version>[^,;\s]+)")


def floors(pyproject: Path) -> dict[str, str]:
    """Name -> lowest allowed version of every PINNED dependency; each must declare one."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    found: dict[str, str] = {}
    for spec in dependencies:
        match = _FLOOR.match(spec)
        if match is not None and match["name"].lower() in PINNED:
            found[match["name"].lower()] = match["version"]
    missing = [name for name in PINNED if name not in found]
    if missing:
        raise SystemExit(f"pyproject.toml declares no '>=' floor for {', '.join(missing)}")
    return found


def main(argv: list[str]) -> None:
    root = Path(__file__).resolve().parent.parent
    pins = floors(root / "pyproject.toml")
    if argv == ["--check"]:
        installed = {name: metadata.version(name) for name in pins}
        if installed != pins:
            raise SystemExit(f"installed {installed}, floors {pins}")
        sys.stdout.write(f"running with the floors: {installed}\n")
        return
    sys.stdout.write(" ".join(f"{name}=={version}" for name, version in pins.items()) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
