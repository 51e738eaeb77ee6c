"""Delivers the outbox to the smarthost one mail at a time: claim, send with no transaction open, record.

A mail's outcome is committed as soon as the smarthost has answered, before the next mail is begun,
in a short transaction that also leases that next mail (one commit a mail). So a crash repeats at
most the mail in flight, and a sender that dies holds back no mail but that one for a lease. Once
the smarthost cannot be reached no mail can go out, and the rest of what is due is put off a batch
at a time, with nothing sent in between. Each mail the smarthost took is one INFO line, logged once
that is committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import Database
from core.errors import StorageError
from core.models import OutboxItem, Ticket, utcnow
from core.outbox import (LEASE, ClaimedMail, claim_due, next_due_at, record_failure,
                         record_partly_sent, record_sent, release)
from core.settings import RelaySettings
from mailgate.smarthost import Outcome, SendResult, Smarthost

if TYPE_CHECKING:
    from mailgate.runner import Flag

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0
BATCH_SIZE = 200  # mails put off in one transaction while the smarthost cannot be reached
# A lease outlasts many network timeouts, and no mail is begun in its second half (a process held
# up between claim and send): the mail begun still has ten timeouts' time before another daemon
# may retake it.
LEASE_IN_TIMEOUTS = 20


class OutboxSender:
    """Sends due mail until none is due; `run` repeats that in a daemon thread."""

    def __init__(self, db: Database, relay: RelaySettings, hostname: str,
                 clock: Callable[[], datetime] = utcnow, batch_size: int = BATCH_SIZE,
                 wake: Flag | None = None) -> None:
        self._db = db
        self._relay = relay
        self._hostname = hostname
        self._clock = clock
        self._batch_size = batch_size
        self._lease = max(LEASE, timedelta(seconds=relay.timeout_seconds * LEASE_IN_TIMEOUTS))
        self._wake: Flag = wake if wake is not None else threading.Event()  # `run` looks at once when it is set

    def wake(self) -> None:
        self._wake.set()

    def send_due(self) -> int:
        """Deliver every mail due now; returns how many were handed over (sent, retried or failed)."""
        return self._send_due(threading.Event())[0]

    def _send_due(self, stop: threading.Event) -> tuple[int, bool]:
        """Also says whether it stopped because the smarthost cannot be reached; `stop` ends it early."""
        handled = 0
        with Smarthost(self._relay, self._hostname) as smarthost:
            claimed = self._settle(None, claim_next=not stop.is_set())
            while claimed is not None:
                mail, start_by = claimed
                if self._clock() >= start_by:  # held up since the claim: another sender may retake it soon
                    self._put_back(mail)
                    break
                began = time.monotonic()
                result = smarthost.send(mail.mail_from, mail.rcpt_tos, mail.raw)
                milliseconds = round((time.monotonic() - began) * 1000)
                handled += 1
                if smarthost.unreachable:
                    self._settle((mail, result), claim_next=False, milliseconds=milliseconds)
                    handled += self._put_off_due(smarthost.unreachable)
                    break
                claimed = self._settle((mail, result), claim_next=not stop.is_set(), milliseconds=milliseconds)
            return handled, bool(smarthost.unreachable)

    def _settle(self, done: tuple[ClaimedMail, SendResult] | None, *,
                claim_next: bool, milliseconds: int = 0) -> tuple[ClaimedMail, datetime] | None:
        """Record what became of the last mail and lease the next, in one short transaction.

        Returns the next mail with the time by which it must be begun. Should the commit fail, the
        mail just sent is the one in doubt: retaken after its lease, it goes out a second time.
        `milliseconds` is what sending the last mail took, for its log line.
        """
        now = self._clock()
        relayed: str | None = None  # the mask line of a mail the smarthost took, logged after the commit
        with self._db.write() as session:
            if done is not None:
                self._record(session, *done, now)
                if done[1].outcome is Outcome.SENT:
                    relayed = _mask_of(session, done[0].id)
            claimed = claim_due(session, now, limit=1, lease=self._lease) if claim_next else []
        if done is not None and relayed is not None:
            mail, result = done
            log.info("mail %s outcome=relayed mask=%s ms=%d%s", mail.message_id, relayed, milliseconds,
                     f" retry_rcpts={len(result.retry_rcpts)}" if result.retry_rcpts else "")
        return (claimed[0], now + self._lease / 2) if claimed else None

    def _put_back(self, mail: ClaimedMail) -> None:
        with self._db.write() as session:
            release(session, mail)

    def _put_off_due(self, unreachable: str) -> int:
        """Count an attempt for up to a batch of due mail and retry it later: the smarthost cannot be reached."""
        now = self._clock()
        with self._db.write() as session:
            claimed = claim_due(session, now, self._batch_size, self._lease)
            for mail in claimed:
                self._record(session, mail, SendResult(Outcome.RETRY, unreachable), now)
        return len(claimed)

    def _record(self, session: Session, mail: ClaimedMail, result: SendResult, now: datetime) -> None:
        if result.outcome is Outcome.SENT and not result.retry_rcpts:
            record_sent(session, [(mail, result.detail)], now)
        else:
            self._record_trouble(session, mail, result, now)

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


def _mask_of(session: Session, outbox_id: int) -> str:
    """The mask of the ticket an outbox mail is about; "-" for mail about none (a worker's cap alarm)."""
    mask = session.scalar(select(Ticket.mask).join(OutboxItem, OutboxItem.ticket_id == Ticket.id)
                          .where(OutboxItem.id == outbox_id))
    return mask or "-"
