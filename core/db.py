"""Opens the database: one engine, sessions for reading and for writing, SQLite tuned for it."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from core.errors import StorageError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_CACHE = "postdesk.cache"
T = TypeVar("T")


@dataclass
class Database:
    """The engine plus the two kinds of session the entry points open."""

    engine: Engine
    _reader: sessionmaker[Session]
    _writer: sessionmaker[Session]

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for looking only; rolled back at the end."""
        with self._reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction, committed when the block ends without error.

        On SQLite it begins IMMEDIATE, so the write lock is taken before the first read and two
        writers can never both decide on what they read (e.g. both open a ticket for one thread).
        """
        try:
            with self._writer.begin() as session:
                yield session
        except DBAPIError as exc:
            raise StorageError(f"database write failed: {exc.orig!r}") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, **engine_options: Any) -> Database:
    """Create the engine for a URL; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        _make_parent_folder(url)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                  "check_same_thread": False}, **engine_options)
        _tune_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, **engine_options)
    writer_engine = engine.execution_options(postdesk_write=True)
    return Database(
        engine=engine,
        _reader=sessionmaker(engine, expire_on_commit=False),
        _writer=sessionmaker(writer_engine, expire_on_commit=False),
    )


def _make_parent_folder(url: str) -> None:
    """A new user's first `serve` creates var/ rather than failing to open the file."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite(engine: Engine) -> None:
    """WAL lets readers (the CLI) run while the gateway writes; FULL sync makes a commit durable."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("postdesk_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def cached(session: Session, key: Hashable, load: Callable[[], T]) -> T:
    """What `load` returns, loaded once per transaction: for rows a batch of mail reads again and again.

    The value is forgotten when the transaction ends and on any rollback, a savepoint's included,
    since that may have undone an insert the cache remembers. Use it only for rows the transaction
    does not change behind the cached value's back.
    """
    values: dict[Hashable, Any] = session.info.setdefault(_CACHE, {})
    if key not in values:
        values[key] = load()
    return cast(T, values[key])


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, _transaction: SessionTransaction) -> None:
    session.info.pop(_CACHE, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CACHE, None)
