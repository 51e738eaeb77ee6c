"""The read side: tickets and conversations as plain dicts with stable field names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from core.errors import TicketNotFound
from core.masks import normalize_mask
from core.models import Message, Status, Ticket

DEFAULT_STATUSES = (Status.OPEN, Status.WAITING)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def list_tickets(session: Session, statuses: tuple[Status, ...] = DEFAULT_STATUSES) -> list[dict[str, Any]]:
    """Tickets in these statuses, most recently updated first."""
    counts = (select(Message.ticket_id, func.count().label("n")).group_by(Message.ticket_id).subquery())
    rows = session.execute(
        select(Ticket, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.ticket_id == Ticket.id)
        .where(Ticket.status.in_(statuses))
        .options(selectinload(Ticket.recipients), selectinload(Ticket.group), selectinload(Ticket.bucket),
                 selectinload(Ticket.owner), selectinload(Ticket.organization),
                 selectinload(Ticket.first_wrote), selectinload(Ticket.last_wrote))
        .order_by(Ticket.updated_at.desc(), Ticket.id.desc())).all()
    return [ticket_fields(ticket, count) for ticket, count in rows]


def ticket_fields(ticket: Ticket, message_count: int) -> dict[str, Any]:
    """The public fields of a ticket; the private id is deliberately absent."""
    return {
        "mask": ticket.mask,
        "subject": ticket.subject,
        "status": ticket.status.value,
        "priority": ticket.priority.value,
        "group": ticket.group.name,
        "bucket": ticket.bucket.name,
        "owner": ticket.owner.email if ticket.owner else None,
        "organization": ticket.organization.name if ticket.organization else None,
        "created": _iso(ticket.created_at),
        "updated": _iso(ticket.updated_at),
        "last_action": ticket.last_action.value,
        "first_wrote": ticket.first_wrote.email if ticket.first_wrote else None,
        "last_wrote": ticket.last_wrote.email if ticket.last_wrote else None,
        "recipients": [r.email for r in ticket.recipients],
        "message_count": message_count,
        "spam_score": ticket.spam_score,
        "interesting_words": ticket.interesting_words or [],
        "spam_training": ticket.spam_training.value,
    }


def find_ticket(session: Session, mask: str) -> Ticket:
    ticket = session.scalars(select(Ticket).where(Ticket.mask == normalize_mask(mask))).first()
    if ticket is None:
        raise TicketNotFound(mask)
    return ticket


def show_ticket(session: Session, mask: str) -> dict[str, Any]:
    """One ticket's fields and its conversation in order."""
    ticket = find_ticket(session, mask)
    messages = session.scalars(
        select(Message).where(Message.ticket_id == ticket.id)
        .options(selectinload(Message.sender), selectinload(Message.attachments))
        .order_by(Message.id)).all()
    fields = ticket_fields(ticket, len(messages))
    fields["messages"] = [message_fields(m) for m in messages]
    return fields


def message_fields(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "from": message.sender.email,
        "from_name": message.sender.name,
        "to": [a["email"] for a in message.to_addrs],
        "cc": [a["email"] for a in message.cc_addrs],
        "subject": message.subject,
        "date": _iso(message.date),
        "received": _iso(message.received_at),
        "kind": message.kind.value,
        "unverified_sender": message.unverified_sender,
        "text": message.text,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.blob.size, "sha256": a.blob_sha256} for a in message.attachments],
    }
