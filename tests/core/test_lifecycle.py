"""core.lifecycle: one place changes statuses, and the history words every change alike (issue 13, item 2)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from core.db import Database
from core.errors import UsageError
from core.lifecycle import change_statuses, delete_ticket, refuse_deleted, restore_ticket, set_status
from core.models import AuditEntry, Status, Ticket
from ticket_rows import add_tickets

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def history(db: Database) -> list[tuple[int, str, str]]:
    with db.read() as session:
        return list(session.execute(select(AuditEntry.ticket_id, AuditEntry.actor, AuditEntry.detail)
                                    .where(AuditEntry.action == "status").order_by(AuditEntry.id)).all())


def test_one_ticket_and_a_batch_are_worded_alike_and_forget_their_due_time(database: Database) -> None:
    with database.write() as session:
        one, two, three = add_tickets(session, 3, status=Status.WAITING, now=NOW,
                                      waiting_until=lambda i: NOW + timedelta(hours=1))
        ticket = session.get(Ticket, one)
        assert set_status(session, ticket, Status.CLOSED, actor="jane@corp.test", reason="closed", now=NOW)
        assert not set_status(session, ticket, Status.CLOSED, actor="jane@corp.test", reason="closed", now=NOW)
        changed = change_statuses(session, {two: "due", three: "due"}, Ticket.status == Status.WAITING,
                                  Status.WAITING, Status.OPEN, actor="scheduler", now=NOW)
    assert sorted(changed) == [two, three]
    assert history(database) == [(one, "jane@corp.test", "waiting -> closed: closed"),
                                 (two, "scheduler", "waiting -> open: due"), (three, "scheduler", "waiting -> open: due")]
    with database.read() as session:
        assert {t.waiting_until for t in session.scalars(select(Ticket))} == {None}


def test_a_batch_changes_only_what_still_qualifies(database: Database) -> None:
    with database.write() as session:
        waiting, = add_tickets(session, 1, status=Status.WAITING, now=NOW)
        reopened, = add_tickets(session, 1, status=Status.OPEN, now=NOW, start=5)  # changed by someone meanwhile
        assert change_statuses(session, {waiting: "x", reopened: "x"}, Ticket.status == Status.WAITING,
                               Status.WAITING, Status.CLOSED, actor="scheduler", now=NOW) == [waiting]
    assert [entry[0] for entry in history(database)] == [waiting]


def test_deleted_and_held_tickets_come_back_only_the_way_they_left(database: Database) -> None:
    with database.write() as session:
        deleted, held = (session.get(Ticket, i) for i in add_tickets(session, 2, status=Status.OPEN, now=NOW))
        delete_ticket(session, deleted, actor="jane@corp.test", now=NOW)
        held.status = Status.SPAM
        for ticket in (deleted, held):
            with pytest.raises(UsageError):
                refuse_deleted(ticket)
        with pytest.raises(UsageError, match="notspam"):
            restore_ticket(session, held, actor="jane@corp.test", now=NOW)
        restore_ticket(session, deleted, actor="jane@corp.test", now=NOW)
        assert (deleted.status, held.status) == (Status.OPEN, Status.SPAM)
