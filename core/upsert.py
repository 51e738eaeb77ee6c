"""Insert-if-absent that works on SQLite and PostgreSQL, so concurrent gateways never collide."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless its unique key exists already; True when this call inserted it."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(table).values(**values).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg reports -1 for a statement run this way
    returned = session.execute(statement.returning(*table.primary_key.columns)).first()
    return returned is not None
