"""Mends a thread that arrived out of order: two tickets that turn out to be one conversation become one.

Replies can arrive before their parent, each opening a ticket; when the parent (or a mail that
proves it belongs to both) arrives, the tickets are merged so that the same mails give the same
tickets in any order. One ticket survives; everything of the other moves to it, its mask keeps
leading to it (merged_masks), the merge is audited on the survivor, and the workers are told once.
The subject and first writer always come from the thread's earliest mail.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from core.models import (
    AuditEntry,
    Base,
    MergedMask,
    Message,
    MessageKind,
    OutboxItem,
    ParentReference,
    SentRecipient,
    ThreadKey,
    Ticket,
    TicketRecipient,
)
from core.tickets import audit
from core.upsert import as_table, insert_ignore

_MOVED_BY_TICKET = (Message, ThreadKey, SentRecipient, OutboxItem, AuditEntry, MergedMask)


def merge_tickets(session: Session, survivor: Ticket, absorbed: Ticket, *, reason: str, now: datetime) -> None:
    """Move everything of `absorbed` to `survivor` and leave its mask pointing there."""
    for model in _MOVED_BY_TICKET:
        session.execute(update(model).where(model.ticket_id == absorbed.id).values(ticket_id=survivor.id))
    _move_rows(session, TicketRecipient, absorbed, survivor, ("address_id", "added_at"))
    _move_rows(session, ParentReference, absorbed, survivor, ("message_id", "referenced_by"))
    insert_ignore(session, MergedMask.__table__, {"mask": absorbed.mask, "ticket_id": survivor.id, "merged_at": now})
    audit(session, survivor, actor="postdesk", action="merged",
          detail=f"{absorbed.mask} ({absorbed.status.value}) merged into {survivor.mask}: {reason}", now=now)
    if absorbed.updated_at > survivor.updated_at:
        survivor.updated_at = absorbed.updated_at
    session.flush()
    session.execute(delete(Ticket).where(Ticket.id == absorbed.id))  # its rows moved already: no ORM cascade
    session.expunge(absorbed)
    session.expire(survivor, ["recipients", "messages"])
    refresh_thread_head(session, survivor)


def _move_rows(session: Session, model: type[Base], absorbed: Ticket, survivor: Ticket,
               columns: tuple[str, ...]) -> None:
    """Rows keyed by ticket: copied to the survivor where it has none alike, then removed from the absorbed."""
    table = as_table(model.__table__)
    rows = session.execute(select(*(table.c[c] for c in columns)).where(table.c.ticket_id == absorbed.id)).all()
    for row in rows:
        insert_ignore(session, table, {"ticket_id": survivor.id, **dict(zip(columns, row))})
    session.execute(delete(table).where(table.c.ticket_id == absorbed.id))


def refresh_thread_head(session: Session, ticket: Ticket) -> None:
    """The subject and first writer of the ticket are those of its thread's earliest trusted mail.

    Earliest by the thread itself: a mail that answers no other mail of the ticket; among several
    such, the one with the earliest Date (then the first received). Dates alone may tie or lie.
    """
    rows = session.execute(
        select(Message.message_id, Message.subject, Message.sender_id, Message.date, Message.received_at, Message.id,
               Message.headers)
        .where(Message.ticket_id == ticket.id, Message.kind == MessageKind.INBOUND,
               Message.unverified_sender.is_(False))).all()
    if not rows:
        return
    ids = {row.message_id for row in rows}
    roots = [row for row in rows if not ids & (_answered(row.headers) - {row.message_id})] or rows
    head = min(roots, key=lambda m: ((m.date or m.received_at), m.received_at, m.id))
    if head.subject:
        ticket.subject = head.subject
    ticket.first_wrote_id = head.sender_id


_ID = re.compile(r"<[^<>\s]+>")


def _answered(headers: list[list[str]] | None) -> set[str]:
    """The ids a stored mail's In-Reply-To and References name."""
    return {found for name, value in headers or [] if name.lower() in ("in-reply-to", "references")
            for found in _ID.findall(value)}
