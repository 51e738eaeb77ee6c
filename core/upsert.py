"""Insert-if-absent that works on SQLite and PostgreSQL, so concurrent gateways never collide."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import FromClause, Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.db import run


def insert_ignore(session: Session, table: FromClause, values: dict[str, Any]) -> bool:
    """Insert a row unless its unique key exists already; True when this call inserted it.

    `table` is a model's `__table__` (or a Table).
    """
    statement = insert_ignore_statement(table, session.get_bind().dialect.name)
    return run(session, statement, values).first() is not None


def insert_ignore_many(session: Session, table: FromClause, rows: list[dict[str, Any]], key: str = "") -> set[Any]:
    """insert_ignore for many rows in one round trip; the `key` column (the one-column primary key unless
    named) of the rows this call inserted."""
    if not rows:
        return set()
    statement = insert_ignore_statement(table, session.get_bind().dialect.name, key)
    return set(run(session, statement, rows).scalars())


@lru_cache(maxsize=None)
def insert_ignore_statement(table: FromClause, dialect: str, key: str = "") -> Insert:
    """Built once per table: building a statement costs about as much as running it.

    The values come as parameters at execution. RETURNING, not rowcount: psycopg reports -1 for a
    statement run this way.
    """
    module, target = (postgresql if dialect == "postgresql" else sqlite), as_table(table)
    returned = [target.c[key]] if key else list(target.primary_key.columns)
    return module.insert(target).on_conflict_do_nothing().returning(*returned)


def as_table(clause: FromClause) -> Table:
    """A model's `__table__` as the Table it is: SQLAlchemy types the attribute as any FromClause."""
    if not isinstance(clause, Table):
        raise TypeError(f"not a table: {clause!r}")
    return clause
