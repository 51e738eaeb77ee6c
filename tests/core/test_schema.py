"""Schema: Alembic migrations match the models, upgrade is idempotent, SQLite runs in WAL mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from core.db import open_database
from core.errors import SchemaOutOfDate
from core.models import Base
from core.schema import ensure_schema, head_revision, upgrade
from core.search import UNMAPPED_SEARCH_OBJECTS
from testkit import run_in_process


def _mapped(name: str | None, kind: str, _parents: object) -> bool:
    """The search index is made by its migration outside the models (core.search)."""
    return name not in UNMAPPED_SEARCH_OBJECTS


def test_migrations_produce_exactly_the_models(db_url: str) -> None:
    db = open_database(db_url)
    upgrade(db)
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _mapped})
        diff = compare_metadata(context, Base.metadata)
    db.dispose()
    assert diff == []


def test_db_upgrade_command_is_idempotent(config_path: Path) -> None:
    first = run_in_process(config_path, "db", "upgrade")
    assert first.returncode == 0 and first.stdout.decode().strip() == f"schema: empty -> {head_revision()}"
    again = run_in_process(config_path, "db", "upgrade")
    assert again.stdout.decode().strip() == f"schema: {head_revision()} -> {head_revision()}"


def test_a_database_behind_the_code_is_refused(db_url: str) -> None:
    db = open_database(db_url)
    upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    with pytest.raises(SchemaOutOfDate):
        ensure_schema(db)
    db.dispose()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'new' / 'p.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_the_cheap_schema_check_knows_the_newest_migration() -> None:
    from core.schema import SCHEMA_HEAD

    assert SCHEMA_HEAD == head_revision(), "set core.schema.SCHEMA_HEAD to the newest migration"


def test_an_upgrade_keeps_the_tickets_of_a_database_in_use(db_url: str) -> None:
    """A migration that rebuilds a table others point at (SQLite's batch mode) must not trip on their keys."""
    from alembic import command

    from core.schema import _alembic_config

    db = open_database(db_url)
    config = _alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0010")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO groups (id, name, address, auto_reply, close_notice, language)"
                          " VALUES (1, 'Support', 'support@example.com', true, false, '')"))
        conn.execute(text("INSERT INTO buckets (id, group_id, name) VALUES (1, 1, 'Inbox')"))
        conn.execute(text("INSERT INTO tickets (id, mask, subject, status, priority, group_id, bucket_id, created_at,"
                          " updated_at, last_action, spam_training) VALUES (1, 'ABC-12345-678', 'Kept', 'open',"
                          " 'normal', 1, 1, '2026-12-01 09:00:00', '2026-12-01 09:00:00', 'new', 'none')"))
    before, after = upgrade(db)
    assert (before, after) == ("0010", head_revision())
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT subject, group_id FROM tickets")).all() == [("Kept", 1)]
        assert conn.execute(text("SELECT transcripts, transcript_address FROM groups")).one() == (False, "")
        if conn.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1  # on again for the daemon's work
    db.dispose()
