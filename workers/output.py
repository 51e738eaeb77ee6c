"""How commands print: rich tables on a terminal, plain tab-separated lines when piped, JSON on request."""

from __future__ import annotations

import json
import sys
import enum
from collections.abc import Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table


E = TypeVar("E", bound=enum.Enum)


def chosen_values(given: Sequence[str], kind: type[E], default: tuple[E, ...]) -> tuple[E, ...]:
    """A repeatable choice option: the values given, every value for `all`, the default for none."""
    if "all" in given:
        return tuple(kind)
    return tuple(kind(value) for value in given) or default


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
