"""How the job tools print: aligned tables of relative times and cut arguments
(core/display.py, shared with the pages), or JSON for scripts (`-o json`). No Redis, no
commands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from worker_runtime.core.display import arguments, cut, relative, stamp

__all__ = ["arguments", "cut", "emit_json", "output_option", "relative", "stamp", "table"]

output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="json: one object with the window's jobs, for scripts.",
)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=repr))
