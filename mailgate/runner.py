"""Turns spooled mail into ticket messages: parse, run the pipeline, or quarantine. Never drops.

Each batch is one transaction with a savepoint per message, so one bad message costs only itself.
A spool row is deleted in the same savepoint that files its message, so a crash at any moment
leaves the mail either filed or still spooled. Several runners (gateways) may share one database:
a row another runner already filed is simply gone when this one tries to delete it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.db import Database
from core.errors import PostdeskError, StorageError, UnparseableMessage
from core.inbound import Envelope, InboundMessage
from core.models import QuarantineItem, SpoolItem, utcnow
from core.pipeline import Delivery, run_pipeline
from core.settings import HelpdeskSettings
from mailgate.parse import parse_message

log = logging.getLogger(__name__)

BATCH_SIZE = 64
MAX_ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 1.0


@dataclass(frozen=True)
class _Spooled:
    id: int
    received_at: datetime
    envelope: Envelope
    raw: bytes
    attempts: int


@dataclass
class RunStats:
    filed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    retried: int = 0


class SpoolRunner:
    """Drains the spool; `run` loops in a thread for the daemon, `drain` runs once for CLI commands."""

    def __init__(self, db: Database, helpdesk: HelpdeskSettings, batch_size: int = BATCH_SIZE,
                 poll_seconds: float = 1.0) -> None:
        self._db = db
        self._helpdesk = helpdesk
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wake = threading.Event()
        self.stats = RunStats()

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Process until stopped; polls too, since another gateway may spool into the same database."""
        while not stop.is_set():
            self._wake.clear()
            try:
                progressed = self.process_batch()
            except StorageError as exc:
                log.error("spool runner: %s; retrying in %.0fs", exc, RETRY_PAUSE_SECONDS)
                stop.wait(RETRY_PAUSE_SECONDS)
                continue
            if not progressed:
                self._wake.wait(self._poll_seconds)
        self.drain()

    def drain(self) -> RunStats:
        """Process everything spooled now; returns the running totals."""
        while self.process_batch():
            pass
        return self.stats

    def process_batch(self) -> bool:
        """File one batch; False when the spool held nothing this runner could take."""
        items = self._fetch()
        if not items:
            return False
        parsed = [(item, _parse(item)) for item in items]
        failures = 0
        with self._db.write() as session:
            for item, result in parsed:
                # A failure is recorded before the next item: spool rows are then locked in id order,
                # as every runner locks them, so two runners may wait for each other but never deadlock.
                if (error := self._file_one(session, item, result)) is not None:
                    self._record_failure(session, item, error)
                    failures += 1
        return failures < len(items)

    def _fetch(self) -> list[_Spooled]:
        with self._db.read() as session:
            rows = session.execute(
                select(SpoolItem.id, SpoolItem.received_at, SpoolItem.source, SpoolItem.mail_from,
                       SpoolItem.rcpt_tos, SpoolItem.raw, SpoolItem.attempts)
                .order_by(SpoolItem.id).limit(self._batch_size)).all()
        return [_Spooled(r.id, r.received_at, Envelope(r.source, r.mail_from, tuple(r.rcpt_tos)), r.raw, r.attempts)
                for r in rows]

    def _file_one(self, session: Session, item: _Spooled, result: InboundMessage | UnparseableMessage) -> str | None:
        """File or quarantine one message in its own savepoint; returns an error text on failure."""
        try:
            with session.begin_nested():
                if session.execute(delete(SpoolItem).where(SpoolItem.id == item.id)).rowcount == 0:
                    return None  # another runner filed it
                if isinstance(result, UnparseableMessage):
                    _quarantine(session, item, f"unparseable: {result}")
                    self.stats.quarantined += 1
                    return None
                delivery = run_pipeline(Delivery(session, result, self._helpdesk, utcnow()))
                if delivery.outcome == "duplicate":
                    self.stats.duplicates += 1
                else:
                    self.stats.filed += 1
                return None
        except (PostdeskError, SQLAlchemyError) as exc:
            self.stats.retried += 1
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug must not lose mail: count it, retry, then quarantine
            log.exception("spool item %d failed in the pipeline", item.id)
            self.stats.retried += 1
            return f"{type(exc).__name__}: {exc}"

    def _record_failure(self, session: Session, item: _Spooled, error: str) -> None:
        attempts = item.attempts + 1
        if attempts < MAX_ATTEMPTS:
            log.warning("spool item %d failed (attempt %d): %s", item.id, attempts, error)
            session.execute(update(SpoolItem).where(SpoolItem.id == item.id)
                            .values(attempts=attempts, last_error=error[:2000]))
            return
        with session.begin_nested():
            if session.execute(delete(SpoolItem).where(SpoolItem.id == item.id)).rowcount:
                _quarantine(session, item, f"failed {attempts} times: {error}")
                self.stats.quarantined += 1


def _parse(item: _Spooled) -> InboundMessage | UnparseableMessage:
    try:
        return parse_message(item.raw, item.envelope)
    except UnparseableMessage as exc:
        return exc


def _quarantine(session: Session, item: _Spooled, reason: str) -> None:
    log.warning("quarantined spool item %d from %r: %s", item.id, item.envelope.mail_from, reason)
    session.add(QuarantineItem(received_at=item.received_at, source=item.envelope.source,
                               mail_from=item.envelope.mail_from, rcpt_tos=list(item.envelope.rcpt_tos),
                               reason=reason[:4000], raw=item.raw))
