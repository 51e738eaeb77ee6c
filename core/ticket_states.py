"""What a worker does to a ticket's status from the terminal: wait until a time, delete, restore."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import TicketNotFound, UsageError
from core.masks import normalize_mask
from core.models import Status, Ticket
from core.tickets import audit, set_status


def locked_ticket(session: Session, mask: str) -> Ticket:
    """The ticket, its row locked for this transaction: a purge or the scheduler cannot change it meanwhile."""
    ticket = session.scalars(select(Ticket).where(Ticket.mask == normalize_mask(mask)).with_for_update()).first()
    if ticket is None:
        raise TicketNotFound(mask)
    return ticket


def wait_until(session: Session, ticket: Ticket, due: datetime, *, actor: str, now: datetime) -> None:
    """Set the ticket waiting until `due`, when the daemon reopens it (a recipient's mail reopens it sooner)."""
    if ticket.status is Status.DELETED:
        raise UsageError(f"{ticket.mask} is deleted; restore it first")
    if due <= now:
        raise UsageError(f"the due time {due:%Y-%m-%d %H:%M} UTC is not in the future")
    reason = f"waiting until {due:%Y-%m-%d %H:%M} UTC"
    ticket.waiting_until = due
    if ticket.status is Status.WAITING:  # no status change, but a new due time is worth a line in the history
        audit(session, ticket, actor=actor, action="waiting", detail=reason, now=now)
        ticket.updated_at = now
    else:
        set_status(session, ticket, Status.WAITING, actor=actor, reason=reason, now=now)


def delete_ticket(session: Session, ticket: Ticket, *, actor: str, now: datetime) -> None:
    """Move the ticket to `deleted`; it can be restored until a purge removes it."""
    if ticket.status is Status.DELETED:
        raise UsageError(f"{ticket.mask} is deleted already")
    set_status(session, ticket, Status.DELETED, actor=actor, reason="deleted", now=now)


def restore_ticket(session: Session, ticket: Ticket, *, actor: str, now: datetime) -> None:
    """Bring a deleted ticket back as open."""
    if ticket.status is not Status.DELETED:
        raise UsageError(f"{ticket.mask} is {ticket.status.value}, not deleted")
    set_status(session, ticket, Status.OPEN, actor=actor, reason="restored", now=now)
