"""Brings a database's schema to the code's version with Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from core.db import Database
from core.errors import SchemaOutOfDate

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SCHEMA_LOCK_KEY = 0x706F7374  # "post": any fixed number shared by every postdesk process


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database) -> tuple[str | None, str | None]:
    """Apply every pending migration; returns (before, after) revisions."""
    before = current_revision(db)
    config = _alembic_config()
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # two daemons starting on one empty database: the second waits, then finds it current
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return before, current_revision(db)


def is_empty(db: Database) -> bool:
    return not inspect(db.engine).get_table_names()


def ensure_schema(db: Database) -> None:
    """Create the schema of an empty database; refuse to run on one that is behind."""
    if is_empty(db):
        upgrade(db)
        return
    current, head = current_revision(db), head_revision()
    if current != head:
        raise SchemaOutOfDate(f"database schema is at {current}, code expects {head}: run `postdesk db upgrade`")
