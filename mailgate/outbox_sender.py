"""Delivers the outbox to the smarthost: claim in one transaction, send with none open, record in another."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from core.db import Database
from core.errors import StorageError
from core.models import utcnow
from core.outbox import claim_due, next_due_at, record_failure, record_sent
from core.settings import RelaySettings
from mailgate.smarthost import Outcome, SendResult, Smarthost

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0


class OutboxSender:
    """Sends due mail until none is due; `run` repeats that in a daemon thread."""

    def __init__(self, db: Database, relay: RelaySettings, hostname: str,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._relay = relay
        self._hostname = hostname
        self._clock = clock
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def send_due(self) -> int:
        """Deliver every mail due now; returns how many were handed over (sent, retried or failed)."""
        handled = 0
        with Smarthost(self._relay, self._hostname) as smarthost:
            while True:
                with self._db.write() as session:
                    claimed = claim_due(session, self._clock())
                if not claimed:
                    return handled
                results = [(mail.id, smarthost.send(mail.mail_from, mail.rcpt_tos, mail.raw)) for mail in claimed]
                self._record(results)
                handled += len(results)
                if all(r.outcome is Outcome.RETRY for _, r in results):
                    return handled  # the smarthost is down: wait for the retry time

    def _record(self, results: list[tuple[int, SendResult]]) -> None:
        now = self._clock()
        with self._db.write() as session:
            for item_id, result in results:
                if result.outcome is Outcome.SENT:
                    record_sent(session, item_id, now, result.detail)
                    continue
                permanent = result.outcome is Outcome.FAILED
                log.log(logging.ERROR if permanent else logging.WARNING, "outbox item %d %s: %s", item_id,
                        "failed" if permanent else "will be retried", result.detail)
                record_failure(session, item_id, now, result.detail, permanent=permanent, relay=self._relay)

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
                self.send_due()
                pause = self.seconds_until_due()
            except StorageError as exc:
                log.error("outbox: %s", exc)
                pause = IDLE_POLL_SECONDS
            if pause > 0:
                self._wake.wait(pause)
