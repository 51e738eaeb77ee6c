"""Finding the ticket a write command acts on, by the mask a worker typed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Ticket
from core.ticket_views import resolve_mask


def find_ticket(session: Session, given: str) -> Ticket:
    """The ticket of a whole mask, or of its first characters when only one ticket fits them."""
    mask = resolve_mask(session.connection(), given)
    return session.scalars(select(Ticket).where(Ticket.mask == mask)).one()
