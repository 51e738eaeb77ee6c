"""The one outbox: every mail the helpdesk sends is queued here, inside the caller's transaction.

An item gets its Message-ID when it is queued, so a reply to it threads (and proves its sender)
even before it is sent, and a resend after a crash carries the same id (the receiving side can
tell it is the same mail). Delivery happens outside any transaction: claim, send, record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.models import OutboxItem, OutboxState, Ticket
from core.settings import RelaySettings
from core.tickets import record_sent_message_id

LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class ClaimedMail:
    """A mail taken for delivery; the lease lets another daemon retake it if this one dies."""

    id: int
    message_id: str
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes


def queue_mail(session: Session, mail: EmailMessage, *, purpose: str, mail_from: str, rcpt_tos: list[str],
               ticket: Ticket | None, now: datetime) -> OutboxItem:
    """Queue one built mail (it must carry its Message-ID already)."""
    message_id = str(mail["Message-ID"])
    item = OutboxItem(message_id=message_id, ticket_id=ticket.id if ticket else None, purpose=purpose,
                      mail_from=mail_from, rcpt_tos=rcpt_tos, raw=mail.as_bytes(policy=SMTP),
                      state=OutboxState.QUEUED, attempts=0, created_at=now, next_attempt_at=now)
    session.add(item)
    if ticket is not None:
        record_sent_message_id(session, ticket, message_id)
    return item


def _due(now: datetime):  # type: ignore[no-untyped-def]
    return or_(and_(OutboxItem.state == OutboxState.QUEUED, OutboxItem.next_attempt_at <= now),
               and_(OutboxItem.state == OutboxState.SENDING, OutboxItem.lease_until < now))


def claim_due(session: Session, now: datetime, limit: int = 50) -> list[ClaimedMail]:
    """Take due mail for delivery; rows another daemon is claiming right now are skipped."""
    items = session.scalars(select(OutboxItem).where(_due(now)).order_by(OutboxItem.id).limit(limit)
                            .with_for_update(skip_locked=True)).all()
    for item in items:
        item.state = OutboxState.SENDING
        item.lease_until = now + LEASE
    return [ClaimedMail(i.id, i.message_id, i.mail_from, list(i.rcpt_tos), i.raw) for i in items]


def record_sent(session: Session, item_id: int, now: datetime, detail: str = "") -> None:
    item = session.get(OutboxItem, item_id)
    if item is not None:
        item.state, item.sent_at, item.lease_until = OutboxState.SENT, now, None
        item.last_error = detail or None
        item.attempts += 1


def record_failure(session: Session, item_id: int, now: datetime, detail: str, *, permanent: bool,
                   relay: RelaySettings) -> None:
    """A permanent failure, or a temporary one past the give-up age, is final; else retry later."""
    item = session.get(OutboxItem, item_id)
    if item is None:
        return
    item.attempts += 1
    item.last_error = detail[:2000]
    item.lease_until = None
    too_old = (now - item.created_at).total_seconds() > relay.give_up_after_seconds
    if permanent or too_old:
        item.state = OutboxState.FAILED
        return
    item.state = OutboxState.QUEUED
    item.next_attempt_at = now + retry_delay(item.attempts, relay)


def retry_delay(attempts: int, relay: RelaySettings) -> timedelta:
    """Doubling delays from the first to the largest setting."""
    seconds = min(relay.retry_initial_seconds * 2 ** max(attempts - 1, 0), relay.retry_max_seconds)
    return timedelta(seconds=seconds)


def next_due_at(session: Session) -> datetime | None:
    """When the earliest queued mail is due (a lease running out counts too)."""
    queued = session.scalar(select(OutboxItem.next_attempt_at).where(OutboxItem.state == OutboxState.QUEUED)
                            .order_by(OutboxItem.next_attempt_at).limit(1))
    leased = session.scalar(select(OutboxItem.lease_until).where(OutboxItem.state == OutboxState.SENDING)
                            .order_by(OutboxItem.lease_until).limit(1))
    return min((t for t in (queued, leased) if t is not None), default=None)
