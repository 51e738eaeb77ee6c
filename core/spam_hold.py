"""Mail the filter judges spam is held, never deleted: a filter that meets new kinds of mail is wrong sometimes.

A new ticket scoring above the threshold gets the status `spam`: no worker is notified, nobody is
acknowledged, and every list but `postdesk spam review` leaves it out. Only people remove it:
`spam MASK` (trained as spam, moved to `deleted`) or `notspam MASK` (trained as not spam, released
as if it had just arrived: the workers are told then). What nobody judged is purged after
`spam.retention_days` (core/purge.py), as deleted mail is: a held ticket gets no activity, so its
updated_at is the moment it was held.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from core.addresses import Address
from core.inbound import Envelope, InboundAttachment, InboundMessage
from core.models import Attachment, Blob, Message
from core.ticket_views import HELD, MAX_PAGE_SIZE, TicketFilter, iso, list_tickets

FILTER_ACTOR = "spam filter"


def stored_mail(session: Session, message: Message) -> InboundMessage:
    """A stored mail as the notification reads it: sender, subject, text and attachments, from the database."""
    attachments = session.execute(select(Attachment.filename, Attachment.content_type, Blob.data)
                                  .join(Blob, Blob.sha256 == Attachment.blob_sha256)
                                  .where(Attachment.message_id == message.id).order_by(Attachment.position)).all()
    return InboundMessage(message_id=message.message_id, sender=Address(message.sender.email, message.sender.name),
                          subject=message.subject, envelope=Envelope("held"), raw=b"", text=message.text,
                          attachments=tuple(InboundAttachment(*row) for row in attachments))


def held_tickets(conn: Connection, retention_days: float, *, limit: int = MAX_PAGE_SIZE,
                 page: int = 1) -> list[dict[str, Any]]:
    """What the filter holds, the most doubtful (lowest score) first and the surest spam last, each with
    `purge_due`: when it goes if nobody judges it."""
    rows = list_tickets(conn, TicketFilter(statuses=(HELD,), sort="spam", descending=False, limit=limit, page=page))
    for row in rows:
        row["purge_due"] = iso(purge_due(datetime.fromisoformat(row["updated"]), retention_days))
    return rows


def purge_due(held_at: datetime, retention_days: float) -> datetime:
    """When a held ticket nobody judged is purged."""
    return held_at + timedelta(days=retention_days)
