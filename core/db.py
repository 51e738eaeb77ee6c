"""Opens the database: one engine, sessions for reading and for writing, SQLite tuned for it."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar, Unpack, cast

from sqlalchemy import Engine, event
from sqlalchemy.engine import CursorResult
from sqlalchemy.sql import Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from core.engine import open_engine
from core.errors import StorageError
from core.settings import DatabaseSettings

_CACHE = "postdesk.cache"
T = TypeVar("T")


class Turn(Enum):
    """How a write transaction queues for SQLite's one write lock among the processes of one daemon."""

    ANY = "any"  # as SQLite gives it: CLI commands, the desk, the scheduler, the outbox
    FIRST = "first"  # someone waits for this commit (an SMTP client for its 250): before the runner's next turn
    YIELDING = "yielding"  # the runner's filing: it steps aside between two mails when a FIRST write waits


class Turns(Protocol):
    """The order among a daemon's SQLite writers (mailgate.spool.WriteTurns); NoTurns everywhere else."""

    def writer(self) -> AbstractContextManager[None]: ...
    def runner(self) -> AbstractContextManager[None]: ...
    def writer_waiting(self) -> bool: ...


class NoTurns:
    """No order to keep: PostgreSQL, and any process that writes alone."""

    def writer(self) -> AbstractContextManager[None]:
        return nullcontext()

    def runner(self) -> AbstractContextManager[None]:
        return nullcontext()

    def writer_waiting(self) -> bool:
        return False


@dataclass
class Database:
    """The engine plus the two kinds of session the entry points open.

    `turns` is chosen once per process, where a daemon opens the database on SQLite (mailgate.daemon
    and its runner's process); the modules that write only say which Turn their transaction takes.
    """

    engine: Engine
    _reader: sessionmaker[Session]
    _writer: sessionmaker[Session]
    turns: Turns = field(default_factory=NoTurns)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for looking only; rolled back at the end."""
        with self._reader() as session:
            yield session

    @contextmanager
    def write(self, turn: Turn = Turn.ANY) -> Iterator[Session]:
        """One transaction, committed when the block ends without error.

        On SQLite it begins IMMEDIATE, so the write lock is taken before the first read and two
        writers can never both decide on what they read (e.g. both open a ticket for one thread).
        """
        with self._turn(turn):
            try:
                with self._writer.begin() as session:
                    yield session
            except DBAPIError as exc:
                raise StorageError(f"database write failed: {exc.orig!r}") from exc

    def first_waiting(self) -> bool:
        """Whether a Turn.FIRST write waits for the lock: a YIELDING writer then commits and steps aside."""
        return self.turns.writer_waiting()

    def _turn(self, turn: Turn) -> AbstractContextManager[None]:
        if turn is Turn.FIRST:
            return self.turns.writer()
        if turn is Turn.YIELDING:
            return self.turns.runner()
        return nullcontext()

    def dispose(self) -> None:
        self.engine.dispose()


def open_configured(settings: DatabaseSettings) -> Database:
    """The database the settings name, with their busy timeout."""
    return open_database(settings.url, busy_timeout=settings.busy_timeout_seconds)


def open_database(url: str, **engine_options: Any) -> Database:
    """The engine for a URL (core.engine), with the sessions the entry points open."""
    engine = open_engine(url, **engine_options)
    writer_engine = engine.execution_options(postdesk_write=True)
    return Database(
        engine=engine,
        _reader=sessionmaker(engine, expire_on_commit=False),
        _writer=sessionmaker(writer_engine, expire_on_commit=False),
    )


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


def run(session: Session, statement: Executable, params: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        ) -> CursorResult[Unpack[tuple[Any, ...]]]:
    """A Core statement (tables and columns, no entities) on the session's connection.

    session.execute adds the ORM's machinery to every statement, about twice the statement's own cost
    on SQLite. What the session holds unwritten is flushed first, as its autoflush would have.
    """
    session.flush()
    return session.connection().execute(statement, params)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, _transaction: SessionTransaction) -> None:
    session.info.pop(_CACHE, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CACHE, None)
