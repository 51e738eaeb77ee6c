"""What a worker changes on a ticket (status, owner, priority): one function each, by mail or from the terminal.

Each change is audited with who made it; a change to what the ticket already is does nothing and
says so (returns False), so repeating a command is harmless and leaves no noise in the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import TicketNotFound, UsageError
from core.models import Priority, Status, Ticket, Worker
from core.notify import Outbound, send_close_notice
from core.ticket_views import resolve_mask
from core.tickets import audit, audit_change, set_status

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


def refuse_deleted(ticket: Ticket) -> None:
    """A deleted ticket waits for a purge or `restore`, a held one for a verdict; nothing else should quietly
    bring them back."""
    if ticket.status is Status.DELETED:
        raise UsageError(f"{ticket.mask} is deleted; restore it first")
    if ticket.status is Status.SPAM:
        raise UsageError(f"{ticket.mask} is held as spam; `postdesk notspam {ticket.mask}` releases it")


def wait_until(session: Session, ticket: Ticket, due: datetime, *, actor: str, now: datetime) -> None:
    """Set the ticket waiting until `due`, when the daemon reopens it (a recipient's mail reopens it sooner)."""
    refuse_deleted(ticket)
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
    """Bring a deleted ticket back as open (a held one is released by a verdict: `notspam`)."""
    if ticket.status is Status.SPAM:
        raise UsageError(f"{ticket.mask} is held as spam, not deleted; `postdesk notspam {ticket.mask}` releases it")
    if ticket.status is not Status.DELETED:
        raise UsageError(f"{ticket.mask} is {ticket.status.value}, not deleted")
    set_status(session, ticket, Status.OPEN, actor=actor, reason="restored", now=now)


def close_ticket(session: Session, out: Outbound, ticket: Ticket, *, actor: str, reason: str, now: datetime) -> bool:
    """Close the ticket and, where its group asks for one, queue the close notice; False if closed already."""
    if ticket.status is Status.CLOSED:
        return False
    set_status(session, ticket, Status.CLOSED, actor=actor, reason=reason, now=now)
    send_close_notice(session, out, ticket, now)
    return True


def reopen_ticket(session: Session, ticket: Ticket, *, actor: str, reason: str, now: datetime) -> bool:
    """Open a waiting or closed ticket again (a due time is forgotten); False if it is open already."""
    if ticket.status is Status.OPEN:
        return False
    set_status(session, ticket, Status.OPEN, actor=actor, reason=reason, now=now)
    return True


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
