"""Accepting mail durably: raw bytes into the spool table, committed before anyone says 250.

Concurrent SMTP sessions share one writer thread that commits whatever has queued up in one
transaction (group commit), so eight sessions pay for one fsync, not eight. On SQLite the writer
and the spool runner (another process) take turns at the one write lock through WriteTurns, and
the writer, whose commit SMTP clients are waiting for, goes first.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from multiprocessing.context import BaseContext

from sqlalchemy import insert
from sqlalchemy.orm import Session

from core.db import Database, Turn, run
from core.errors import StorageError
from core.inbound import Envelope
from core.models import SpoolItem, utcnow
from core.upsert import as_table
from mailgate.spool_claims import LEASE

log = logging.getLogger(__name__)

MAX_BATCH = 256
TURN_WAIT_SECONDS = 5.0


class WriteTurns:
    """Who holds SQLite's one write lock next: the spool writer cuts in between two runner messages.

    Left to SQLite, a writer that finds the lock taken sleeps in its busy handler in steps of up to
    100 ms, and the runner, committing and beginning again at once, keeps taking the lock first; an
    SMTP client would wait for a whole batch of someone else's mail. So both sides take this
    cross-process lock around a write transaction, the writer says it is waiting, and the runner
    commits after its current message and steps aside. It only orders the two: SQLite's own locking
    still decides what is safe, so a lock not had within TURN_WAIT_SECONDS is logged and the write
    goes ahead anyway. A process whose partner died stops taking turns (renew, abandon), since the
    dead one may have left the lock held.
    """

    def __init__(self, context: BaseContext) -> None:
        self._alone = False
        self.renew(context)

    def renew(self, context: BaseContext) -> None:
        """Fresh lock and flag, for a new partner process (the old one may have died holding them)."""
        self._lock = context.Lock()
        self._writer_waiting = context.Event()

    def abandon(self) -> None:
        """Stop taking turns in this process: the partner is gone."""
        self._alone = True

    @contextmanager
    def writer(self) -> Iterator[None]:
        """The spool writer's turn, taken as soon as the runner finishes the message in hand."""
        waiting = self._writer_waiting
        waiting.set()
        try:
            with self._held():
                waiting.clear()
                yield
        finally:
            waiting.clear()

    @contextmanager
    def runner(self) -> Iterator[None]:
        """The runner's turn; it waits while the writer is waiting, so it cannot take the lock back first."""
        deadline = time.monotonic() + TURN_WAIT_SECONDS
        while self.writer_waiting() and time.monotonic() < deadline:
            time.sleep(0.0002)
        with self._held():
            yield

    def writer_waiting(self) -> bool:
        return not self._alone and self._writer_waiting.is_set()

    @contextmanager
    def _held(self) -> Iterator[None]:
        lock = self._lock  # release the lock taken, even if renew() swapped in another meanwhile
        acquired = not self._alone and lock.acquire(timeout=TURN_WAIT_SECONDS)
        if not acquired and not self._alone:
            log.warning("no write turn within %.0fs; writing without one", TURN_WAIT_SECONDS)
        try:
            yield
        finally:
            if acquired:
                lock.release()


def spool_messages(db: Database, items: Iterable[tuple[bytes, Envelope]], claimed_by: str | None = None) -> list[int]:
    """Commit raw messages to the spool in one transaction; returns their spool ids.

    `claimed_by`: the runner that will file them (mailgate.spool_claims), so no other takes them meanwhile.
    """
    with db.write() as session:
        return insert_spooled(session, items, claimed_by)


def insert_spooled(session: Session, items: Iterable[tuple[bytes, Envelope]], claimed_by: str | None = None) -> list[int]:
    """The rows of spool_messages, in the caller's transaction; one Core statement, not the ORM: the SMTP
    process's writer thread shares its CPU with every session."""
    now = utcnow()
    lease_until = now + LEASE if claimed_by else None
    rows = [{"received_at": now, "source": env.source, "mail_from": env.mail_from, "rcpt_tos": list(env.rcpt_tos),
             "raw": raw, "attempts": 0, "claimed_by": claimed_by, "lease_until": lease_until} for raw, env in items]
    return list(run(session, _SPOOL_ROWS, rows).scalars()) if rows else []


_SPOOL_ROWS = insert(as_table(SpoolItem.__table__)).returning(SpoolItem.__table__.c.id, sort_by_parameter_order=True)


_Pending = tuple[bytes, Envelope, "Future[int]"]


class SpoolWriter:
    """One thread that commits queued messages in batches and resolves each caller's future."""

    def __init__(self, db: Database, on_committed: Callable[[], None] = lambda: None) -> None:
        self._db = db
        self._on_committed = on_committed
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._thread.start()

    def submit(self, raw: bytes, envelope: Envelope) -> Future[int]:
        future: Future[int] = Future()
        self._queue.put((raw, envelope, future))
        return future

    async def accept(self, raw: bytes, envelope: Envelope) -> int:
        """Wait, without blocking the event loop, until the message is committed."""
        return await asyncio.wrap_future(self.submit(raw, envelope))

    def close(self) -> None:
        """Commit what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:  # close() queues None behind everything else
            stopping = self._commit_queued(first)
            self._on_committed()
            if stopping:
                return

    def _commit_queued(self, first: _Pending) -> bool:
        """Commit the first mail with what queued up behind it while this thread waited for its turn, and
        resolve each one's future; True when close() was among what queued."""
        batch, stopping = [first], False
        try:
            with self._db.write(Turn.FIRST) as session:
                batch, stopping = self._take_queued(batch)
                ids = insert_spooled(session, [(raw, env) for raw, env, _ in batch])
        except Exception as exc:  # the thread must outlive any failure; callers get a 451
            log.error("spool write of %d messages failed: %s", len(batch), exc)
            for _, _, future in batch:
                future.set_exception(exc if isinstance(exc, StorageError) else StorageError(str(exc)))
            return stopping
        for (_, _, future), spool_id in zip(batch, ids):
            future.set_result(spool_id)
        return stopping

    def _take_queued(self, batch: list[_Pending]) -> tuple[list[_Pending], bool]:
        """Add what is queued to the batch; True as well when close() was among it."""
        stopping = False
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stopping = True
                continue
            batch.append(item)
        return batch, stopping
