"""How commands print: rich tables on a terminal, plain tab-separated lines when piped, JSON on request."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table for people on a terminal; whole, untruncated lines for pipes and scripts."""
    if not sys.stdout.isatty():
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(" ".join(cell.split()) for cell in row))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
