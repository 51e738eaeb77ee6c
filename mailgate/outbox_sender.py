"""Delivers the outbox to the smarthost: claim in a transaction, send with none open, record in another.

Recording a batch and claiming the next share one transaction: one commit a batch, not two.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.db import Database
from core.errors import StorageError
from core.models import utcnow
from core.outbox import (LEASE, ClaimedMail, claim_due, next_due_at, record_failure,
                         record_partly_sent, record_sent, release)
from core.settings import RelaySettings
from mailgate.smarthost import Outcome, SendResult, Smarthost

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0
BATCH_SIZE = 200
# A lease outlasts many network timeouts, and no mail is started in its second half: the last mail
# begun still has ten timeouts' time before another daemon may retake it.
LEASE_IN_TIMEOUTS = 20


class OutboxSender:
    """Sends due mail until none is due; `run` repeats that in a daemon thread."""

    def __init__(self, db: Database, relay: RelaySettings, hostname: str,
                 clock: Callable[[], datetime] = utcnow, batch_size: int = BATCH_SIZE) -> None:
        self._db = db
        self._relay = relay
        self._hostname = hostname
        self._clock = clock
        self._batch_size = batch_size
        self._lease = max(LEASE, timedelta(seconds=relay.timeout_seconds * LEASE_IN_TIMEOUTS))
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def send_due(self) -> int:
        """Deliver every mail due now; returns how many were handed over (sent, retried or failed)."""
        return self._send_due(threading.Event())[0]

    def _send_due(self, stop: threading.Event) -> tuple[int, bool]:
        """Also says whether it stopped because the smarthost cannot be reached; `stop` ends it early."""
        handled = 0
        with Smarthost(self._relay, self._hostname) as smarthost:
            claimed, start_by = self._settle([], [], claim_more=True)
            while claimed:
                results = self._send(smarthost, claimed, start_by, stop)
                handled += len(results)
                # none sent: the clock leapt past half the lease; unreachable: wait for the retry time
                more = bool(results) and not smarthost.unreachable and not stop.is_set()
                claimed, start_by = self._settle(results, claimed[len(results):], claim_more=more)
            return handled, bool(smarthost.unreachable)

    def _settle(self, results: list[tuple[ClaimedMail, SendResult]], unsent: list[ClaimedMail], *,
                claim_more: bool) -> tuple[list[ClaimedMail], datetime]:
        """Record what the last claim came to and claim the next, in one transaction (one commit, not two)."""
        now = self._clock()
        with self._db.write() as session:
            self._record(session, results, unsent, now)
            claimed = claim_due(session, now, self._batch_size, self._lease) if claim_more else []
        return claimed, now + self._lease / 2

    def _send(self, smarthost: Smarthost, claimed: list[ClaimedMail], start_by: datetime,
              stop: threading.Event) -> list[tuple[ClaimedMail, SendResult]]:
        """Send in order while the lease has time to spare and no stop is asked; the rest is put back unsent."""
        results = []
        for mail in claimed:
            if stop.is_set() or self._clock() >= start_by:
                break
            results.append((mail, smarthost.send(mail.mail_from, mail.rcpt_tos, mail.raw)))
        return results

    def _record(self, session: Session, results: list[tuple[ClaimedMail, SendResult]], unsent: list[ClaimedMail],
                now: datetime) -> None:
        record_sent(session, [(mail, result.detail) for mail, result in results
                              if result.outcome is Outcome.SENT and not result.retry_rcpts], now)
        for mail, result in results:
            if result.outcome is not Outcome.SENT or result.retry_rcpts:
                self._record_trouble(session, mail, result, now)
        for mail in unsent:
            release(session, mail)

    def _record_trouble(self, session: Session, mail: ClaimedMail, result: SendResult, now: datetime) -> None:
        """A mail not sent to every recipient: retried, for all or for some, or failed for good."""
        if result.outcome is Outcome.SENT:
            log.warning("outbox item %d sent, to be retried for some: %s", mail.id, result.detail)
            recorded = record_partly_sent(session, mail, now, result.detail, retry_rcpts=list(result.retry_rcpts),
                                          relay=self._relay)
        else:
            permanent = result.outcome is Outcome.FAILED
            log.log(logging.ERROR if permanent else logging.WARNING, "outbox item %d %s: %s", mail.id,
                    "failed" if permanent else "will be retried", result.detail)
            recorded = record_failure(session, mail, now, result.detail, permanent=permanent, relay=self._relay,
                                      retry_rcpts=result.retry_rcpts)
        if not recorded:
            log.warning("outbox item %d: its lease ran out, another sender has it now", mail.id)

    def seconds_until_due(self) -> float:
        with self._db.read() as session:
            due = next_due_at(session)
        if due is None:
            return IDLE_POLL_SECONDS
        return min(max((due - self._clock()).total_seconds(), 0.0), IDLE_POLL_SECONDS)

    def run(self, stop: threading.Event) -> None:
        """Loop until stopped; polls at least every second, since another process may queue mail."""
        while not stop.is_set():
            self._wake.clear()
            try:
                _, unreachable = self._send_due(stop)
                pause = IDLE_POLL_SECONDS if unreachable else self.seconds_until_due()
            except StorageError as exc:
                log.error("outbox: %s", exc)
                pause = IDLE_POLL_SECONDS
            except Exception:  # a bug must not end outbound mail for good; claimed mail is retaken after its lease
                log.exception("outbox: unexpected error")
                pause = IDLE_POLL_SECONDS
            if pause > 0:
                self._wake.wait(pause)
