"""Insert-if-absent that works on SQLite and PostgreSQL, so concurrent gateways never collide."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless its unique key exists already; True when this call inserted it."""
    statement = _insert_ignore_statement(table, session.get_bind().dialect.name)
    return session.execute(statement, values).first() is not None


@lru_cache(maxsize=None)
def _insert_ignore_statement(table: Table, dialect: str) -> Insert:
    """Built once per table: building a statement costs about as much as running it.

    The values come as parameters at execution. RETURNING, not rowcount: psycopg reports -1 for a
    statement run this way.
    """
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
