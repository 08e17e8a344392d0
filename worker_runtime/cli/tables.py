"""How the job tools print: aligned tables of relative times and cut arguments
(core/display.py, shared with the pages), or JSON for scripts (`-o json`). No Redis, no
commands.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import click

from worker_runtime.core.display import arguments, cut, relative, stamp
from worker_runtime.store.browse import Window

__all__ = [
    "arguments",
    "cut",
    "emit_json",
    "emit_window",
    "output_option",
    "relative",
    "stamp",
    "table",
]

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


def emit_window(
    shown: Window[Any],
    output: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    noun: str,
) -> None:
    """One window of a job list (store/browse.py's `Window`): its jobs as JSON for scripts, or
    a table and a line saying how many there are and how to see the next ones."""
    if output == "json":
        emit_json(
            {
                "total": shown.total,
                "offset": shown.offset,
                "next_offset": shown.next_offset,
                "jobs": [asdict(job) for job in shown.items],
            }
        )
        return
    click.echo(table(headers, rows) if rows else f"no {noun}s here")
    more = f"; next: --offset {shown.next_offset}" if shown.next_offset is not None else ""
    click.echo(f"({len(shown.items)} shown of {shown.total} {noun}(s){more})")
