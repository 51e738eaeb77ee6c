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
    statement = _insert_ignore_statement(table, session.get_bind().dialect.name)
    return run(session, statement, values).first() is not None


def insert_ignore_many(session: Session, table: FromClause, rows: list[dict[str, Any]]) -> set[Any]:
    """insert_ignore for many rows of a one-column key, in one round trip; the keys this call inserted."""
    if not rows:
        return set()
    statement = _insert_ignore_statement(table, session.get_bind().dialect.name)
    return set(run(session, statement, rows).scalars())


@lru_cache(maxsize=None)
def _insert_ignore_statement(table: FromClause, dialect: str) -> Insert:
    """Built once per table: building a statement costs about as much as running it.

    The values come as parameters at execution. RETURNING, not rowcount: psycopg reports -1 for a
    statement run this way.
    """
    module, target = (postgresql if dialect == "postgresql" else sqlite), as_table(table)
    return module.insert(target).on_conflict_do_nothing().returning(*target.primary_key.columns)


def as_table(clause: FromClause) -> Table:
    """A model's `__table__` as the Table it is: SQLAlchemy types the attribute as any FromClause."""
    if not isinstance(clause, Table):
        raise TypeError(f"not a table: {clause!r}")
    return clause
