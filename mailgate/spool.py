"""Accepting mail durably: raw bytes into the spool table, committed before anyone says 250.

Concurrent SMTP sessions share one writer thread that commits whatever has queued up in one
transaction (group commit), so eight sessions pay for one fsync, not eight.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future

from core.db import Database
from core.errors import StorageError
from core.inbound import Envelope
from core.models import SpoolItem, utcnow

log = logging.getLogger(__name__)

MAX_BATCH = 256


def spool_messages(db: Database, items: Iterable[tuple[bytes, Envelope]]) -> list[int]:
    """Commit raw messages to the spool in one transaction; returns their spool ids."""
    now = utcnow()
    with db.write() as session:
        rows = [SpoolItem(received_at=now, source=env.source, mail_from=env.mail_from,
                          rcpt_tos=list(env.rcpt_tos), raw=raw, attempts=0) for raw, env in items]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


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
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch: list[_Pending] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    continue
                batch.append(item)
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            ids = spool_messages(self._db, ((raw, env) for raw, env, _ in batch))
        except Exception as exc:  # the thread must outlive any failure; callers get a 451
            log.error("spool write of %d messages failed: %s", len(batch), exc)
            for _, _, future in batch:
                future.set_exception(exc if isinstance(exc, StorageError) else StorageError(str(exc)))
            return
        for (_, _, future), spool_id in zip(batch, ids):
            future.set_result(spool_id)
        self._on_committed()
