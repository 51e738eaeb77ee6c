"""What a customer sees of the helpdesk: their own tickets, in their own words of status.

A customer sees a ticket only while their address is one of its recipients (a recipient joins only
by proven mail, core.pipeline) and the ticket is neither deleted nor held as spam. Of a ticket they
see what mail already showed them: the public conversation (core.transcript decides it, once), the
attachments of those mails, priority and dates. Never internal comments, unproven mail, spam data,
owners' or workers' addresses. Any ticket outside that set answers exactly as a mask that does not
exist (TicketNotFound), so a customer learns nothing by trying masks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from core.errors import TicketNotFound, UsageError
from core.personal_mail import private_addresses
from core.models import (AddressRow, Attachment, Blob, LastAction, Message, MessageKind, Priority, Status, Ticket,
                         TicketRecipient)
from core.transcript import Transcript, read_transcript

PORTAL_PAGE = 50
MAX_SEARCH_WORDS = 8


class CustomerStatus(str, enum.Enum):
    """A ticket's status in the customer's words (customer_status says which)."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    WAITING_USER = "waiting_user"
    CLOSED = "closed"


ALL_BUT_CLOSED = (CustomerStatus.OPEN, CustomerStatus.IN_PROGRESS, CustomerStatus.ANSWERED,
                  CustomerStatus.WAITING_USER)
SHOWN_TO_CUSTOMERS = (Status.OPEN, Status.WAITING, Status.CLOSED)  # deleted and held-as-spam tickets are not


def customer_status(status: Status, last_action: LastAction, has_owner: bool) -> CustomerStatus | None:
    """The one mapping of a ticket to the customer's five statuses; None: the customer does not see it.

    waiting → waiting_user (the helpdesk waits for them); closed → closed; open after a worker's
    reply → answered; open with an owner → in_progress; any other open ticket → open. Deleted and
    held-as-spam tickets are not shown at all.
    """
    if status is Status.WAITING:
        return CustomerStatus.WAITING_USER
    if status is Status.CLOSED:
        return CustomerStatus.CLOSED
    if status is not Status.OPEN:
        return None
    if last_action is LastAction.WORKER_REPLIED:
        return CustomerStatus.ANSWERED
    return CustomerStatus.IN_PROGRESS if has_owner else CustomerStatus.OPEN


def _status_condition(wanted: CustomerStatus) -> ColumnElement[bool]:
    """customer_status as SQL, so a filter and its page count agree with the function above."""
    is_open = Ticket.status == Status.OPEN
    replied = Ticket.last_action == LastAction.WORKER_REPLIED
    return {
        CustomerStatus.WAITING_USER: Ticket.status == Status.WAITING,
        CustomerStatus.CLOSED: Ticket.status == Status.CLOSED,
        CustomerStatus.ANSWERED: and_(is_open, replied),
        CustomerStatus.IN_PROGRESS: and_(is_open, ~replied, Ticket.owner_id.is_not(None)),
        CustomerStatus.OPEN: and_(is_open, ~replied, Ticket.owner_id.is_(None)),
    }[wanted]


def public_messages() -> ColumnElement[bool]:
    """The mails a ticket's customers were shown: proven mail to it and the workers' replies (as core.transcript)."""
    return and_(Message.kind.in_([MessageKind.INBOUND, MessageKind.REPLY]), Message.unverified_sender.is_(False))


@dataclass(frozen=True)
class PortalFilter:
    """The list's filters: statuses (default all but closed), created from/to (inclusive days), words."""

    statuses: tuple[CustomerStatus, ...] = ALL_BUT_CLOSED
    created_from: date | None = None
    created_to: date | None = None
    words: str = ""
    page: int = 1


@dataclass(frozen=True)
class PortalTicketRow:
    mask: str
    subject: str
    status: CustomerStatus
    priority: Priority
    messages: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PortalAttachment:
    id: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class PortalTicket:
    """One ticket as its customer sees it."""

    row: PortalTicketRow
    transcript: Transcript
    attachments: tuple[PortalAttachment, ...]


def customer_address_id(session: Session, email: str) -> int | None:
    return session.scalar(select(AddressRow.id).where(AddressRow.email == email.strip().lower()))


def _theirs(address_id: int) -> ColumnElement[bool]:
    """Tickets the address is a recipient of, and that customers may see at all."""
    return and_(Ticket.status.in_(SHOWN_TO_CUSTOMERS),
                exists().where(TicketRecipient.ticket_id == Ticket.id, TicketRecipient.address_id == address_id))


def _rows(address_id: int) -> Select[Any]:
    count = (select(func.count(Message.id)).where(Message.ticket_id == Ticket.id, public_messages())
             .correlate(Ticket).scalar_subquery())
    return select(Ticket, count).where(_theirs(address_id))


def _row(session: Session, ticket: Ticket, messages: int) -> PortalTicketRow:
    status = customer_status(ticket.status, ticket.last_action, ticket.owner_id is not None)
    assert status is not None  # _theirs lets only shown tickets through
    subject = private_addresses(session).redact(ticket.subject)  # a worker may have typed an address in it
    return PortalTicketRow(ticket.mask, subject, status, ticket.priority, messages, ticket.created_at,
                           ticket.updated_at)


def customer_tickets(session: Session, email: str, wanted: PortalFilter) -> list[PortalTicketRow]:
    """A page of the customer's tickets, newest activity first."""
    address_id = customer_address_id(session, email)
    if address_id is None:
        return []
    if wanted.page < 1:
        raise UsageError("pages count from 1")
    query = _rows(address_id).where(or_(*(_status_condition(s) for s in wanted.statuses)))
    if wanted.created_from is not None:
        query = query.where(Ticket.created_at >= _day_start(wanted.created_from))
    if wanted.created_to is not None:
        query = query.where(Ticket.created_at < _day_start(wanted.created_to) + timedelta(days=1))
    words = _words(wanted.words)
    addresses = [word for word in words if "@" in word]
    if addresses and any(word in email for word in addresses for email in private_addresses(session).emails):
        return []  # shown redacted, a worker's address must not be found either: no answer tells it is there
    for word in words:
        pattern = f"%{_escape_like(word)}%"
        in_messages = exists().where(Message.ticket_id == Ticket.id, public_messages(),
                                     func.lower(Message.text).like(pattern, escape="\\"))
        query = query.where(or_(func.lower(Ticket.subject).like(pattern, escape="\\"), in_messages))
    query = query.order_by(Ticket.updated_at.desc(), Ticket.id.desc()).limit(PORTAL_PAGE) \
        .offset((wanted.page - 1) * PORTAL_PAGE)
    return [_row(session, found[0], found[1]) for found in session.execute(query)]


def waiting_for_customer(session: Session, email: str) -> int:
    """The badge: the customer's tickets whose status is waiting_user."""
    address_id = customer_address_id(session, email)
    if address_id is None:
        return 0
    return session.scalar(select(func.count()).select_from(Ticket).where(
        _theirs(address_id), _status_condition(CustomerStatus.WAITING_USER))) or 0


def their_ticket(session: Session, email: str, mask: str) -> Ticket:
    """The ticket if the customer may see it; TicketNotFound, worded as for any unknown mask, otherwise."""
    address_id = customer_address_id(session, email)
    ticket = None if address_id is None else session.scalars(
        select(Ticket).where(Ticket.mask == mask.strip().upper(), _theirs(address_id))).first()
    if ticket is None:
        raise TicketNotFound(mask.strip()[:40])
    return ticket


def customer_ticket(session: Session, email: str, mask: str) -> PortalTicket:
    ticket = their_ticket(session, email, mask)
    messages = session.scalar(select(func.count(Message.id)).where(Message.ticket_id == ticket.id,
                                                                   public_messages())) or 0
    attachments = session.execute(
        select(Attachment.id, Attachment.filename, Attachment.content_type, Blob.size)
        .join(Message, Message.id == Attachment.message_id).join(Blob, Blob.sha256 == Attachment.blob_sha256)
        .where(Message.ticket_id == ticket.id, public_messages()).order_by(Message.id, Attachment.position)).all()
    return PortalTicket(_row(session, ticket, messages), read_transcript(session, ticket),
                        tuple(PortalAttachment(i, f or f"attachment-{i}", c, s) for i, f, c, s in attachments))


def customer_attachment(session: Session, email: str, mask: str,
                        attachment_id: int) -> tuple[Ticket, PortalAttachment, bytes]:
    """An attachment of a public mail of the customer's ticket, with the ticket; TicketNotFound for anything else."""
    ticket = their_ticket(session, email, mask)
    found = session.execute(
        select(Attachment.filename, Attachment.content_type, Blob.size, Blob.data)
        .join(Message, Message.id == Attachment.message_id).join(Blob, Blob.sha256 == Attachment.blob_sha256)
        .where(Attachment.id == attachment_id, Message.ticket_id == ticket.id, public_messages())).first()
    if found is None:
        raise TicketNotFound(mask.strip()[:40])
    filename, content_type, size, data = found
    return ticket, PortalAttachment(attachment_id, filename or f"attachment-{attachment_id}", content_type, size), data


def _words(query: str) -> list[str]:
    words = [w.lower() for w in query.split() if w.strip()]
    if len(words) > MAX_SEARCH_WORDS:
        raise UsageError(f"search for at most {MAX_SEARCH_WORDS} words")
    return words


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=timezone.utc)
