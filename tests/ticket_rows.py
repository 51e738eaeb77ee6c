"""Tickets written straight into the database in bulk, for the scheduler's tests and bench/scheduler.py.

The scheduler reads only rows, so how a ticket came to be does not matter to it; building a hundred
thousand through the mail pipeline would only measure the pipeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.groups import ensure_default_group, inbox_of
from core.models import AddressRow, Attachment, Blob, Message, Status, Ticket
from core.settings import HelpdeskSettings
from core.upsert import insert_ignore

SENDER = "customer@outside.test"


def mask_of(number: int, prefix: str = "TST") -> str:
    """A mask of the real shape, unique for numbers below 10^8."""
    return f"{prefix}-{number // 1000:05d}-{number % 1000:03d}"


def add_tickets(session: Session, count: int, *, status: Status, now: datetime, start: int = 0,
                waiting_until: Callable[[int], datetime | None] = lambda i: None,
                updated_at: datetime | None = None, prefix: str = "TST") -> list[int]:
    """Insert `count` tickets in the default group; returns their ids in order."""
    group = ensure_default_group(session, HelpdeskSettings())
    bucket = inbox_of(session, group)
    rows = [{"mask": mask_of(start + i, prefix), "subject": f"Ticket {start + i}", "status": status,
             "group_id": group.id, "bucket_id": bucket.id, "created_at": now, "updated_at": updated_at or now,
             "waiting_until": waiting_until(i)} for i in range(count)]
    return list(session.scalars(insert(Ticket).returning(Ticket.id, sort_by_parameter_order=True), rows))


def add_messages(session: Session, ticket_ids: Sequence[int], now: datetime,
                 attachments: Sequence[bytes] = ()) -> None:
    """One inbound mail on each ticket, carrying these attachments (their blobs shared, stored once)."""
    insert_ignore(session, AddressRow.__table__, {"email": SENDER, "name": "Customer", "bouncing": False})
    sender = session.scalar(select(AddressRow.id).where(AddressRow.email == SENDER))
    messages: list[dict[str, Any]] = [
        {"ticket_id": ticket_id, "message_id": f"<{ticket_id}.{now.timestamp()}@outside.test>",
         "sender_id": sender, "subject": "hello", "text": "hello", "raw": b"Subject: hello\r\n\r\nhello\r\n",
         "received_at": now, "headers": [], "html": "", "to_addrs": [], "cc_addrs": [], "defects": []}
        for ticket_id in ticket_ids]
    message_ids = list(session.scalars(insert(Message).returning(Message.id, sort_by_parameter_order=True),
                                       messages))
    digests = [hashlib.sha256(data).hexdigest() for data in attachments]
    for data, digest in zip(attachments, digests):
        insert_ignore(session, Blob.__table__, {"sha256": digest, "size": len(data), "data": data})
    if digests:
        session.execute(insert(Attachment), [
            {"message_id": message_id, "position": position, "filename": f"file{position}.bin",
             "content_type": "application/octet-stream", "blob_sha256": digest}
            for message_id in message_ids for position, digest in enumerate(digests)])
