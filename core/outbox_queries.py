"""The read side of the outbox: what the helpdesk has queued, is sending, sent, or gave up on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import OutboxItem, OutboxState, Ticket

PENDING_STATES = (OutboxState.QUEUED, OutboxState.SENDING, OutboxState.FAILED)


def list_outbox(session: Session, states: tuple[OutboxState, ...] = PENDING_STATES) -> list[dict[str, Any]]:
    """Outbound mail in these states, oldest first (the order it is sent in)."""
    rows = session.execute(select(OutboxItem, Ticket.mask).outerjoin(Ticket, Ticket.id == OutboxItem.ticket_id)
                           .where(OutboxItem.state.in_(states)).order_by(OutboxItem.id)).all()
    return [outbox_fields(item, mask) for item, mask in rows]


def outbox_fields(item: OutboxItem, mask: str | None) -> dict[str, Any]:
    """The public fields of one outbound mail; its bytes stay out (`raw` is deferred and never loaded)."""
    return {
        "id": item.id,
        "state": item.state.value,
        "purpose": item.purpose,
        "ticket": mask,
        "message_id": item.message_id,
        "recipients": list(item.rcpt_tos),
        "attempts": item.attempts,
        "next_attempt": _iso(item.next_attempt_at) if item.state is OutboxState.QUEUED else None,
        "last_error": item.last_error,
        "created": _iso(item.created_at),
        "sent": _iso(item.sent_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
