"""Every status change a ticket goes through, whoever asks for it, with one audit wording.

Mail commands (`#close`), the CLI (`postdesk close`), the scheduler (due times, auto-close), the spam
filter's hold and workers' spam verdicts, deletion and restore: each calls one function here, so a
rule about statuses (a deleted ticket is restored only by `restore`, a held one only by a verdict, a
due time means something only while waiting) is written once. The history says every change the
same way: `old -> new: reason` (`status_detail`), whether one ticket changed or the scheduler
changed two thousand in one statement (`change_statuses`).

Changes that are no status change (owner, priority) live in core.ticket_states; spam/ only scores
and learns (spam.training), and the status a verdict brings is decided here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.orm import Session

from core.errors import UsageError
from core.models import AuditEntry, Message, MessageKind, SpamTraining, Status, Ticket
from core.notify import Outbound, notify_workers, send_close_notice
from core.spam_hold import FILTER_ACTOR, stored_mail
from core.tickets import audit
from spam.training import Lesson, train_ticket


def status_detail(old: Status, new: Status, reason: str) -> str:
    """How the history words a status change."""
    return f"{old.value} -> {new.value}: {reason}"


def set_status(session: Session, ticket: Ticket, status: Status, *, actor: str, reason: str, now: datetime) -> bool:
    """The one write of a ticket's status; False (and no history line) when it has that status already."""
    if ticket.status is status:
        return False
    audit(session, ticket, actor=actor, action="status", detail=status_detail(ticket.status, status, reason), now=now)
    ticket.status = status
    ticket.updated_at = now
    if status is not Status.WAITING:
        ticket.waiting_until = None  # a due time means something only while the ticket waits
    return True


def change_statuses(session: Session, reasons: Mapping[int, str], still: ColumnElement[bool], old: Status,
                    new: Status, *, actor: str, now: datetime, **values: Any) -> list[int]:
    """set_status for many claimed tickets at once (the scheduler's batches): one conditional UPDATE of
    those that still qualify, one multi-row INSERT of their history, worded as set_status words it.

    Returns the ids really changed: a ticket another process changed meanwhile no longer qualifies.
    """
    if not reasons:
        return []
    if new is not Status.WAITING:
        values.setdefault("waiting_until", None)
    changed = list(session.scalars(update(Ticket).where(Ticket.id.in_(list(reasons)), still)
                                   .values(status=new, updated_at=now, **values).returning(Ticket.id)
                                   .execution_options(synchronize_session=False)))
    if changed:
        session.execute(insert(AuditEntry), [{"ticket_id": ticket_id, "at": now, "actor": actor, "action": "status",
                                              "detail": status_detail(old, new, reasons[ticket_id])}
                                             for ticket_id in changed])
    return changed


def refuse_deleted(ticket: Ticket) -> None:
    """A deleted ticket waits for a purge or `restore`, a held one for a verdict; nothing else should quietly
    bring them back."""
    if ticket.status is Status.DELETED:
        raise UsageError(f"{ticket.mask} is deleted; restore it first")
    if ticket.status is Status.SPAM:
        raise UsageError(f"{ticket.mask} is held as spam; `postdesk notspam {ticket.mask}` releases it")


def wait_until(session: Session, ticket: Ticket, due: datetime, *, actor: str, now: datetime,
               reason: str = "waiting") -> None:
    """Set the ticket waiting until `due`, when the daemon reopens it (a recipient's mail reopens it sooner)."""
    refuse_deleted(ticket)
    if due <= now:
        raise UsageError(f"the due time {due:%Y-%m-%d %H:%M} UTC is not in the future")
    said = f"{reason} until {due:%Y-%m-%d %H:%M} UTC"
    if ticket.status is Status.WAITING:  # no status change, but a new due time is worth a line in the history
        audit(session, ticket, actor=actor, action="waiting", detail=said, now=now)
        ticket.updated_at = now
    else:
        set_status(session, ticket, Status.WAITING, actor=actor, reason=said, now=now)
    ticket.waiting_until = due


def set_waiting(session: Session, ticket: Ticket, due: datetime | None, *, actor: str, reason: str,
                now: datetime) -> bool:
    """Waiting on the customer, until `due` or with no due time (then the group's auto-close may close it):
    a worker's answer by mail, or its `#waiting` command."""
    ticket.waiting_until = due
    return set_status(session, ticket, Status.WAITING, actor=actor, reason=reason, now=now)


def close_ticket(session: Session, out: Outbound, ticket: Ticket, *, actor: str, reason: str, now: datetime) -> bool:
    """Close the ticket and, where its group asks for one, queue the close notice; False if closed already."""
    if not set_status(session, ticket, Status.CLOSED, actor=actor, reason=reason, now=now):
        return False
    send_close_notice(session, out, ticket, now)
    return True


def reopen_ticket(session: Session, ticket: Ticket, *, actor: str, reason: str, now: datetime) -> bool:
    """Open a waiting or closed ticket again (a due time is forgotten); False if it is open already."""
    return set_status(session, ticket, Status.OPEN, actor=actor, reason=reason, now=now)


def delete_ticket(session: Session, ticket: Ticket, *, actor: str, now: datetime, reason: str = "deleted") -> None:
    """Move the ticket to `deleted`; it can be restored until a purge removes it."""
    if ticket.status is Status.DELETED:
        raise UsageError(f"{ticket.mask} is deleted already")
    set_status(session, ticket, Status.DELETED, actor=actor, reason=reason, now=now)


def restore_ticket(session: Session, ticket: Ticket, *, actor: str, now: datetime) -> None:
    """Bring a deleted ticket back as open (a held one is released by a verdict: `notspam`)."""
    if ticket.status is Status.SPAM:
        raise UsageError(f"{ticket.mask} is held as spam, not deleted; `postdesk notspam {ticket.mask}` releases it")
    if ticket.status is not Status.DELETED:
        raise UsageError(f"{ticket.mask} is {ticket.status.value}, not deleted")
    set_status(session, ticket, Status.OPEN, actor=actor, reason="restored", now=now)


def hold_ticket(session: Session, ticket: Ticket, score: float, *, now: datetime) -> None:
    """Put a new ticket aside for review: the one change the filter makes on its own (core.spam_hold)."""
    set_status(session, ticket, Status.SPAM, actor=FILTER_ACTOR, reason=f"held, spam score {score:.2%}", now=now)


def release_ticket(session: Session, out: Outbound, ticket: Ticket, *, actor: str, now: datetime) -> None:
    """Open a held ticket and tell the workers of its mail, as `notify` would have when it arrived."""
    set_status(session, ticket, Status.OPEN, actor=actor, reason="released: not spam", now=now)
    for stored in session.scalars(select(Message).where(Message.ticket_id == ticket.id,
                                                        Message.kind == MessageKind.INBOUND).order_by(Message.id)):
        notify_workers(session, out, ticket, stored_mail(session, stored), now, unproven=stored.unverified_sender)


def record_verdict(session: Session, ticket: Ticket, verdict: SpamTraining, *, actor: str, now: datetime) -> Lesson:
    """Teach the filter a ticket's verdict (spam.training), and say in its history who gave it when it taught anything."""
    lesson = train_ticket(session, ticket, verdict)
    if lesson is Lesson.LEARNT:
        audit(session, ticket, actor=actor, action="training", detail=verdict.value, now=now)
    return lesson


def judge_spam(session: Session, out: Outbound, ticket: Ticket, verdict: SpamTraining, *, actor: str, now: datetime,
               reason: str = "") -> Lesson:
    """A worker's verdict: spam trains spam and deletes the ticket; not spam trains not spam and opens it again.

    A ticket the filter held is released by `not spam` as if its mail had just arrived: its workers hear of it now.
    """
    lesson = record_verdict(session, ticket, verdict, actor=actor, now=now)
    if verdict is SpamTraining.SPAM:
        set_status(session, ticket, Status.DELETED, actor=actor, reason=reason or "marked as spam", now=now)
    elif ticket.status is Status.SPAM:
        release_ticket(session, out, ticket, actor=actor, now=now)
    elif ticket.status is Status.DELETED:
        set_status(session, ticket, Status.OPEN, actor=actor, reason=reason or "marked as not spam", now=now)
    return lesson


def reopen_on_recipient_mail(session: Session, ticket: Ticket, *, actor: str, now: datetime) -> bool:
    """A recipient's proven mail opens a waiting or closed ticket again; deleted and held ones stay as they are."""
    if ticket.status not in (Status.WAITING, Status.CLOSED):
        return False
    return set_status(session, ticket, Status.OPEN, actor=actor, reason="recipient replied", now=now)
