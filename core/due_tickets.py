"""Waiting tickets the clock acts on: reopened at their due time, closed after the group's auto-close days.

Both are set-based: the due rows are claimed (FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite writers
take turns), then changed and audited together by core.lifecycle.change_statuses, so two daemons
never both change one ticket and a ticket gets one audit entry. The caller owns the transaction and
repeats while a whole batch came back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from core.models import Group, Status, Ticket
from core.lifecycle import change_statuses
from core.notify import Outbound, notify_reopened, send_close_notice

SCHEDULER = "scheduler"  # the actor of every change the clock makes
BATCH = 2000


def next_due_at(session: Session) -> datetime | None:
    """The earliest due time of a waiting ticket: one step down the (status, waiting_until) index."""
    return session.scalar(select(func.min(Ticket.waiting_until)).where(Ticket.status == Status.WAITING))


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(Ticket.status == Status.WAITING, Ticket.waiting_until <= now)


def reopen_due_tickets(session: Session, out: Outbound, now: datetime, limit: int = BATCH) -> int:
    """Reopen up to `limit` waiting tickets whose due time has come, earliest first, and tell each one's owner
    (or its group's workers); returns how many."""
    due = dict(session.execute(select(Ticket.id, Ticket.waiting_until).where(_due(now))
                               .order_by(Ticket.waiting_until).limit(limit).with_for_update(skip_locked=True)).all())
    # `when is not None` only narrows the type: the query's WHERE already excludes NULL.
    reasons = {ticket_id: f"due time {_utc(when)} reached" for ticket_id, when in due.items() if when is not None}
    reopened = change_statuses(session, reasons, _due(now), Status.WAITING, Status.OPEN, actor=SCHEDULER, now=now)
    for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(reopened)).order_by(Ticket.id)):
        notify_reopened(session, out, ticket, reasons[ticket.id], now)
    return len(reopened)


def _auto_closable(group_id: int, days: int, now: datetime) -> ColumnElement[bool]:
    """Waiting with no due time and untouched for `days`: a ticket with a due time waits for it instead."""
    return and_(Ticket.group_id == group_id, Ticket.status == Status.WAITING, Ticket.waiting_until.is_(None),
                Ticket.updated_at <= now - timedelta(days=days))


def close_long_waiting(session: Session, out: Outbound, now: datetime, limit: int = BATCH) -> int:
    """Close up to `limit` tickets that waited longer than their group's auto-close days; returns how many."""
    closed_count = 0
    groups = session.execute(select(Group.id, Group.auto_close_days, Group.close_notice | Group.transcripts)
                             .where(Group.auto_close_days.is_not(None)).order_by(Group.id)).all()
    for group_id, days, notice in groups:  # a group keeping transcripts mails their links, notice or not
        if days is None:  # excluded by the query's WHERE; this narrows the type
            continue
        where = _auto_closable(group_id, days, now)
        ids = list(session.scalars(select(Ticket.id).where(where).order_by(Ticket.id)
                                   .limit(limit - closed_count).with_for_update(skip_locked=True)))
        closed = change_statuses(session, dict.fromkeys(ids, f"waiting over {days} days"), where, Status.WAITING,
                                 Status.CLOSED, actor=SCHEDULER, now=now)
        if notice:
            _send_close_notices(session, out, closed, now)
        closed_count += len(closed)
        if closed_count >= limit:
            break
    return closed_count


def _send_close_notices(session: Session, out: Outbound, ticket_ids: Sequence[int], now: datetime) -> None:
    """As `#close` does: the group asked for a transcript; the notices are queued, sent after commit."""
    for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids)).order_by(Ticket.id)):
        send_close_notice(session, out, ticket, now)


def _utc(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
