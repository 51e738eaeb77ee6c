"""A ticket's public conversation as one value: what its customers may read, internal comments left out.

The close notice renders it today; the web desk and encrypted transcripts are to read the same value,
so what counts as public (proven mail and relayed replies, no worker's address or signature) is
decided here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.compose import one_line
from core.models import AddressRow, Group, Message, MessageKind, Ticket, Worker
from core.personal_mail import private_addresses
from core.reply_text import clean_worker_text


@dataclass(frozen=True)
class TranscriptEntry:
    """One public mail of the conversation; a worker's is signed with their name (or the group's), never an address."""

    at: datetime
    author: str
    by_worker: bool
    text: str


@dataclass(frozen=True)
class Transcript:
    """A ticket's public conversation in the order the helpdesk received it."""

    mask: str
    subject: str
    group: str
    entries: tuple[TranscriptEntry, ...]


def read_transcript(session: Session, ticket: Ticket) -> Transcript:
    """The conversation as customers may read it: proven mail and replies, every worker's address redacted.

    Comments (kind COMMENT) and mail whose sender was not proven stay out: neither was ever meant
    for, or shown to, the ticket's recipients.
    """
    group = session.get(Group, ticket.group_id)
    assert group is not None
    private = private_addresses(session)
    rows = session.execute(select(Message, AddressRow.name, AddressRow.email, Worker.name)
                           .join(AddressRow, AddressRow.id == Message.sender_id)
                           .outerjoin(Worker, Worker.id == Message.author_worker_id)
                           .where(Message.ticket_id == ticket.id,
                                  Message.kind.in_([MessageKind.INBOUND, MessageKind.REPLY]),
                                  Message.unverified_sender.is_(False))
                           .order_by(Message.id)).all()
    entries = []
    for message, name, email, worker_name in rows:
        by_worker = message.kind is MessageKind.REPLY or email in private.emails
        text = clean_worker_text(message.text, private.emails) if by_worker else private.redact(message.text)
        author = (worker_name or group.name) if by_worker else (name or email)
        entries.append(TranscriptEntry(at=message.date or message.received_at,
                                       author=private.redact(one_line(author)), by_worker=by_worker, text=text))
    return Transcript(mask=ticket.mask, subject=private.redact(ticket.subject), group=group.name,
                      entries=tuple(entries))
