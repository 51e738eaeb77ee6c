"""How commands print: rich tables on a terminal, plain tab-separated lines when piped, JSON on request."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from workers.terminal_text import json_safe, printable

if TYPE_CHECKING:
    from rich.table import Table

T = TypeVar("T")


def chosen_values(given: Sequence[str], every: Iterable[T], default: tuple[T, ...]) -> tuple[T, ...]:
    """A repeatable choice option: the values given, every value for `all`, the default for none.

    `every` is an Enum class or a sequence of plain strings; enum members are chosen by value.
    """
    every = tuple(every)
    if "all" in given:
        return every
    by_name = {str(getattr(value, "value", value)): value for value in every}
    return tuple(by_name[name] for name in given) or default


def print_json(value: Any) -> None:
    """The same values, with every character a terminal would obey escaped (C0 is escaped by json itself)."""
    click.echo(json_safe(json.dumps(value, indent=2, ensure_ascii=False)))


def print_json_line(value: Any) -> None:
    """One value on one line (JSON Lines: a stream a script reads mail by mail), escaped as print_json."""
    click.echo(json_safe(json.dumps(value, ensure_ascii=False)))


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table for people on a terminal; whole, untruncated lines for pipes and scripts.

    Cells often come from mail: each is made printable, and rich is given plain Text, never markup,
    so a subject like `[link=...]` is shown as written.
    """
    rows = [[printable(cell) for cell in row] for row in rows]
    if not sys.stdout.isatty():
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join(" ".join(cell.split()) for cell in row))
        return
    from rich.console import Console  # rich costs import time; only a terminal needs it

    Console().print(table_for_people(columns, rows))


def table_for_people(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """The rich table print_table shows, its first column whole at any width.

    The first column names the row (a ticket's mask, a group, a worker's address): a worker copies it
    into the next command, so it is never cut (`IWH-52…`) nor wrapped; the other columns shrink.
    Cells must be printable already.
    """
    from rich.cells import cell_len
    from rich.table import Column, Table
    from rich.text import Text

    key, *others = columns
    widest = max(cell_len(cell) for cell in [key, *(row[0] for row in rows)])
    table = Table(Column(key, no_wrap=True, min_width=widest), *others)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table
