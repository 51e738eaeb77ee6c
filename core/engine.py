"""Opens a database engine, SQLite tuned for a daemon and its CLI; no ORM, so read commands start fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


def open_engine(url: str, busy_timeout: float = SQLITE_BUSY_TIMEOUT_SECONDS, **engine_options: Any) -> Engine:
    """Create the engine for a URL; SQLite gets WAL, foreign keys and a busy timeout (seconds)."""
    if url.startswith("sqlite"):
        _make_parent_folder(url)
        engine = create_engine(url, connect_args={"timeout": busy_timeout, "check_same_thread": False},
                               **engine_options)
        _tune_sqlite(engine, busy_timeout)
        return engine
    return create_engine(url, pool_pre_ping=True, **engine_options)


def _make_parent_folder(url: str) -> None:
    """A new user's first `serve` creates var/ rather than failing to open the file."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite(engine: Engine, busy_timeout: float) -> None:
    """WAL lets readers (the CLI) run while the gateway writes; FULL sync makes a commit durable."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("postdesk_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
