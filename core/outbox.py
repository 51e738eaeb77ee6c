"""The one outbox: every mail the helpdesk sends is queued here, inside the caller's transaction.

On its way in, a mail passes a chain of outgoing filters, in order, before it is built and serialized:
the hook for a per-group footer, signing or encryption, and the place of the last guard that holds
customer-bound mail still showing a worker's address (core.personal_mail composes the chain).

An item gets its Message-ID when it is queued, so a reply to it threads (and proves its sender)
even before it is sent, and a resend after a crash carries the same id (the receiving side can
tell it is the same mail). Delivery happens outside any transaction: claim, send, record, one mail
at a time (mailgate.outbox_sender), so a sender that dies leaves one mail in doubt, not a batch.

A claim counts the attempt and leases the item; the attempt number is the claim's token. A sender
that outlives its lease finds the item retaken (a new token), and its late record of a failure or a
release changes nothing. Only "sent" is recorded whoever says it: the mail did go out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.policy import SMTP
from typing import Any, TypeAlias, cast

from sqlalchemy import ColumnElement, CursorResult, bindparam, func, select, update
from sqlalchemy.orm import Session

from core.compose import Outgoing
from core.mail_purpose import MailPurpose
from core.models import OutboxItem, OutboxState, SentRecipient, Ticket
from core.settings import RelaySettings
from core.tickets import record_sent_message_id
from core.upsert import as_table

LEASE = timedelta(minutes=5)
CLAIM_BYTES = 32 * 1024 * 1024  # what one claim holds in memory, however many attachments its mails carry
_MAX_DOUBLINGS = 40  # 2**40 times any sane first delay is past every sane largest one


@dataclass(frozen=True)
class ClaimedMail:
    """A mail taken for delivery; the lease lets another daemon retake it if this one dies."""

    id: int
    message_id: str
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    attempt: int
    created_at: datetime


@dataclass(frozen=True)
class OutgoingMail:
    """One mail on its way into the outbox: what it says, why it is written, and its envelope."""

    content: Outgoing
    purpose: MailPurpose
    mail_from: str
    rcpt_tos: tuple[str, ...]
    ticket: Ticket | None


OutgoingFilter: TypeAlias = Callable[[Session, OutgoingMail, datetime], "OutgoingMail | None"]
"""A step every mail passes before it is serialized, given the time it is queued at: returns the mail
(changed or not), or None to hold it.

A filter that holds a mail says why itself (log, audit): the outbox only learns that nothing is queued.
"""


def queue_mail(session: Session, mail: OutgoingMail, *, filters: Sequence[OutgoingFilter], hostname: str,
               now: datetime, counted: bool = True) -> OutboxItem | None:
    """Pass a mail through the filters in order, then build it (a fresh Message-ID) and queue it.

    None when a filter held it. A counted mail's recipients are remembered with its id: an answer to
    it proves its sender, and the hourly cap (core.personal_mail) counts it. Only the cap's own alarm
    is not counted.
    """
    for step in filters:
        passed = step(session, mail, now)
        if passed is None:
            return None
        mail = passed
    built = mail.content.build(hostname, now)
    message_id = str(built["Message-ID"])
    ticket_id = mail.ticket.id if mail.ticket else None
    item = OutboxItem(message_id=message_id, ticket_id=ticket_id, purpose=str(mail.purpose),
                      mail_from=mail.mail_from, rcpt_tos=list(mail.rcpt_tos), raw=built.as_bytes(policy=SMTP),
                      state=OutboxState.QUEUED, attempts=0, created_at=now, next_attempt_at=now)
    session.add(item)
    for email in dict.fromkeys(mail.rcpt_tos if counted else ()):  # answering this id proves each (core.threads)
        session.add(SentRecipient(message_id=message_id, email=email, ticket_id=ticket_id, sent_at=now))
    if mail.ticket is not None:
        record_sent_message_id(session, mail.ticket, message_id)
    return item


_OUTBOX = as_table(OutboxItem.__table__)
_SIZE = func.length(_OUTBOX.c.raw)
# Built once (a sender claims for every mail it sends); each walks ix_outbox_state_due and stops at the limit.
_LAPSED = (select(_OUTBOX.c.id, _SIZE)
           .where(_OUTBOX.c.state == OutboxState.SENDING, _OUTBOX.c.lease_until < bindparam("now"))
           .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id).limit(bindparam("limit"))
           .with_for_update(skip_locked=True))
_QUEUED = (select(_OUTBOX.c.id, _SIZE)
           .where(_OUTBOX.c.state == OutboxState.QUEUED, _OUTBOX.c.next_attempt_at <= bindparam("now"))
           .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id).limit(bindparam("limit"))
           .with_for_update(skip_locked=True))
_LEASE = (update(_OUTBOX).where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
          .values(state=OutboxState.SENDING, lease_until=bindparam("until"), attempts=_OUTBOX.c.attempts + 1))
_CLAIMED = (select(_OUTBOX.c.id, _OUTBOX.c.message_id, _OUTBOX.c.mail_from, _OUTBOX.c.rcpt_tos, _OUTBOX.c.raw,
                   _OUTBOX.c.attempts, _OUTBOX.c.created_at)
            .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True))).order_by(_OUTBOX.c.id))


def claim_due(session: Session, now: datetime, limit: int = 50, lease: timedelta = LEASE,
              max_bytes: int = CLAIM_BYTES) -> list[ClaimedMail]:
    """Take due mail for delivery: up to `limit` mails and `max_bytes` (one mail at least).

    Counts the attempt and leases the mail; rows another daemon is claiming right now are skipped.
    Mail whose lease ran out comes first, then queued mail in the order it fell due.
    """
    ids = _within(_due(session, now, limit), max_bytes)
    if not ids:
        return []
    session.execute(_LEASE, {"ids": ids, "until": now + lease})
    return [ClaimedMail(*row) for row in session.execute(_CLAIMED, {"ids": ids})]


def _due(session: Session, now: datetime, limit: int) -> list[Any]:
    """(id, size) of up to `limit` due mails, locked: mail whose lease ran out, then queued mail as it fell due."""
    due = list(session.execute(_LAPSED, {"now": now, "limit": limit}).all())
    if len(due) < limit:
        due += session.execute(_QUEUED, {"now": now, "limit": limit - len(due)}).all()
    return due


def _within(due: Sequence[Any], max_bytes: int) -> list[int]:
    """The ids of the oldest rows whose sizes add up to no more than max_bytes; the first always."""
    ids: list[int] = []
    total = 0
    for item_id, size in due:
        total += size or 0
        if ids and total > max_bytes:
            break
        ids.append(item_id)
    return ids


def _update(session: Session, *where: ColumnElement[bool], **values: object) -> bool:
    result = session.execute(update(OutboxItem).where(*where).values(**values)
                             .execution_options(synchronize_session=False))
    return bool(cast("CursorResult[Any]", result).rowcount)


def _still_ours(mail: ClaimedMail) -> tuple[ColumnElement[bool], ...]:
    return (OutboxItem.id == mail.id, OutboxItem.state == OutboxState.SENDING, OutboxItem.attempts == mail.attempt)


_SENT = (update(_OUTBOX)  # built once: run for every mail, and as one executemany for several
         .where(OutboxItem.__table__.c.id == bindparam("item_id"), OutboxItem.__table__.c.state != OutboxState.SENT)
         .values(state=OutboxState.SENT, sent_at=bindparam("now"), lease_until=None, last_error=bindparam("detail")))


def record_sent(session: Session, sent: Sequence[tuple[ClaimedMail, str]], now: datetime) -> None:
    """The smarthost took these mails; each detail notes recipients it refused ("" when none)."""
    if sent:
        session.execute(_SENT, [{"item_id": mail.id, "now": now, "detail": detail[:2000] or None}
                                for mail, detail in sent])


def record_partly_sent(session: Session, mail: ClaimedMail, now: datetime, detail: str, *, retry_rcpts: list[str],
                       relay: RelaySettings) -> bool:
    """Sent to some recipients; the ones refused for now get the same mail (same Message-ID) on a retry.

    Past the give-up age it counts as sent, with the refusals noted.
    """
    if (now - mail.created_at).total_seconds() > relay.give_up_after_seconds:
        record_sent(session, [(mail, detail)], now)
        return True
    return _update(session, *_still_ours(mail), state=OutboxState.QUEUED, rcpt_tos=list(retry_rcpts),
                   lease_until=None, last_error=detail[:2000], next_attempt_at=now + retry_delay(mail.attempt, relay))


def record_failure(session: Session, mail: ClaimedMail, now: datetime, detail: str, *, permanent: bool,
                   relay: RelaySettings, retry_rcpts: Sequence[str] = ()) -> bool:
    """A permanent failure, or a temporary one past the give-up age, is final; else retry later.

    The retry is for `retry_rcpts` alone when given (the others refused the mail for good). False when
    the claim is no longer ours (the lease ran out and another sender retook the mail).
    """
    too_old = (now - mail.created_at).total_seconds() > relay.give_up_after_seconds
    if permanent or too_old:
        return _update(session, *_still_ours(mail), state=OutboxState.FAILED, lease_until=None,
                       last_error=detail[:2000])
    return _update(session, *_still_ours(mail), state=OutboxState.QUEUED, lease_until=None,
                   rcpt_tos=list(retry_rcpts or mail.rcpt_tos), last_error=detail[:2000],
                   next_attempt_at=now + retry_delay(mail.attempt, relay))


def release(session: Session, mail: ClaimedMail) -> bool:
    """Put back a claimed mail that was not tried: due again at once, the attempt not counted."""
    return _update(session, *_still_ours(mail), state=OutboxState.QUEUED, lease_until=None,
                   attempts=mail.attempt - 1)


def retry_delay(attempts: int, relay: RelaySettings) -> timedelta:
    """Doubling delays from the first to the largest setting."""
    doublings = min(max(attempts - 1, 0), _MAX_DOUBLINGS)
    return timedelta(seconds=min(relay.retry_initial_seconds * 2 ** doublings, relay.retry_max_seconds))


def next_due_at(session: Session) -> datetime | None:
    """When the earliest queued mail is due (a lease running out counts too)."""
    queued = session.scalar(select(OutboxItem.next_attempt_at).where(OutboxItem.state == OutboxState.QUEUED)
                            .order_by(OutboxItem.next_attempt_at).limit(1))
    leased = session.scalar(select(OutboxItem.lease_until).where(OutboxItem.state == OutboxState.SENDING)
                            .order_by(OutboxItem.lease_until).limit(1))
    return min((t for t in (queued, leased) if t is not None), default=None)
