"""What a worker changes on a ticket besides its status (owner, priority), and finding the tickets to change.

Status changes are core.lifecycle's.

Each change is audited with who made it; a change to what the ticket already is does nothing and
says so (returns False), so repeating a command is harmless and leaves no noise in the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import TicketNotFound
from core.models import Priority, Ticket, Worker
from core.ticket_views import resolve_mask
from core.tickets import audit_change

NOBODY = "none"


def locked_ticket(session: Session, given: str) -> Ticket:
    """The ticket of a mask or its unambiguous first characters, locked: a purge or the scheduler waits."""
    return locked_tickets(session, [given])[0]


def locked_tickets(session: Session, given: Sequence[str]) -> list[Ticket]:
    """The tickets of several masks (or prefixes), in the order given, each once, their rows locked.

    Every mask is resolved before anything is locked, so one unknown or ambiguous mask stops the
    command before it changed a thing; rows are locked in id order, so two commands cannot deadlock.
    """
    connection = session.connection()
    masks = list(dict.fromkeys(resolve_mask(connection, mask) for mask in given))
    rows = session.scalars(select(Ticket).where(Ticket.mask.in_(masks)).order_by(Ticket.id).with_for_update())
    by_mask = {ticket.mask: ticket for ticket in rows}
    missing = [mask for mask in masks if mask not in by_mask]
    if missing:  # purged between the lookup and the lock
        raise TicketNotFound(missing[0])
    return [by_mask[mask] for mask in masks]


def assign_owner(session: Session, ticket: Ticket, owner: Worker | None, *, actor: str, now: datetime) -> bool:
    """Give the ticket to a worker (their mail then goes to them alone), or to nobody; False if unchanged."""
    if ticket.owner_id == (owner.id if owner else None):
        return False
    before = session.get(Worker, ticket.owner_id) if ticket.owner_id else None
    audit_change(session, ticket, actor=actor, action="owner", before=before.email if before else NOBODY,
                 after=owner.email if owner else NOBODY, now=now)
    ticket.owner_id = owner.id if owner else None
    return True


def set_priority(session: Session, ticket: Ticket, priority: Priority, *, actor: str, now: datetime) -> bool:
    """Change the ticket's priority; False if it has that priority already."""
    if ticket.priority is priority:
        return False
    audit_change(session, ticket, actor=actor, action="priority", before=ticket.priority.value, after=priority.value,
                 now=now)
    ticket.priority = priority
    return True
