"""Brings a database's schema to the code's version with Alembic.

Every command checks the schema, so the check must be cheap: it reads the stored revision with one
query and compares it with SCHEMA_HEAD; Alembic itself is imported only to migrate, or when the two
differ (a stale SCHEMA_HEAD costs time, never correctness; a test keeps it current).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from core.errors import SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config

    from core.db import Database  # the ORM's import time is what read commands avoid (core.ticket_views)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SCHEMA_LOCK_KEY = 0x706F7374  # "post": any fixed number shared by every postdesk process
SCHEMA_HEAD = "0015"


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    """The revision stored in the database; None for a database Alembic never touched."""
    return stored_revision(db.engine)


def stored_revision(engine: Engine) -> str | None:
    """current_revision for a bare engine."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def upgrade(db: Database) -> tuple[str | None, str | None]:
    """Apply every pending migration; returns (before, after) revisions."""
    from alembic import command

    before = current_revision(db)
    config = _alembic_config()
    with db.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table by rebuilding it (Alembic's batch mode): dropping the old copy of a
            # table that tickets point at must not check their keys midway; they are checked once, at
            # the end. The pragma works only outside a transaction, so it goes to the driver before the
            # connection's first BEGIN (core.engine emits it) and after the commit.
            _foreign_keys(connection, on=False)
        else:
            # two daemons starting on one empty database: the second waits, then finds it current
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() if sqlite else []
            if broken:
                raise SchemaOutOfDate(f"the migration left rows pointing at nothing: {broken[:5]}")
            connection.commit()
        except BaseException:
            connection.rollback()
            if sqlite:
                connection.invalidate()  # never back to the pool with its keys unchecked
            raise
        if sqlite:
            _foreign_keys(connection, on=True)
    return before, current_revision(db)


def _foreign_keys(connection: Connection, *, on: bool) -> None:
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def is_empty(db: Database) -> bool:
    return not inspect(db.engine).get_table_names()


def ensure_schema(db: Database) -> None:
    """Create the schema of an empty database; refuse to run on one that is behind."""
    current = current_revision(db)
    if current == SCHEMA_HEAD:
        return
    if current is None and is_empty(db):
        upgrade(db)
        return
    head = head_revision()
    if current != head:
        raise SchemaOutOfDate(f"database schema is at {current}, code expects {head}: run `postdesk db upgrade`")
