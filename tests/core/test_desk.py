"""core.desk.Helpdesk: the commands every door calls, tried without any door (issue 13, item 1)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from core.db import Database
from core.desk import Actor, Helpdesk, TicketChanged
from core.errors import NotFound, TicketNotFound, UsageError
from core.models import AuditEntry, Priority, Status, Ticket
from core.settings import Settings
from core.staff import add_worker
from ticket_rows import add_tickets, mask_of

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def desk(settings: Settings, database: Database) -> Helpdesk:
    with database.write() as session:
        add_tickets(session, 3, status=Status.OPEN, now=NOW)
        add_worker(session, "jane@corp.test", "Jane", [])
    return Helpdesk(settings, database, clock=lambda: NOW)


def statuses(database: Database) -> list[Status]:
    with database.read() as session:
        return list(session.scalars(select(Ticket.status).order_by(Ticket.id)))


def test_a_command_answers_with_plain_values_and_names_who_acted(desk: Helpdesk, database: Database) -> None:
    done = desk.close([mask_of(0), mask_of(1)], Actor("jane@corp.test"))
    assert done == [TicketChanged(mask_of(0), "closed", True, "closed"), TicketChanged(mask_of(1), "closed", True, "closed")]
    assert desk.close([mask_of(0)], Actor(system="web desk")) == [TicketChanged(mask_of(0), "closed already", False,
                                                                                "closed")]
    with database.read() as session:
        assert set(session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "status"))) == {"jane@corp.test"}


def test_one_unknown_mask_or_refused_ticket_changes_nothing(desk: Helpdesk, database: Database) -> None:
    with pytest.raises(TicketNotFound):
        desk.set_priority([mask_of(0), "NOPE-00000-000"], Priority.URGENT, Actor())
    desk.delete([mask_of(2)], Actor())
    with pytest.raises(UsageError, match="deleted"):
        desk.close([mask_of(0), mask_of(2)], Actor())
    assert statuses(database) == [Status.OPEN, Status.OPEN, Status.DELETED]
    with pytest.raises(NotFound):
        desk.reopen([mask_of(0)], Actor("nobody@corp.test"))  # an unknown worker acts on nothing


def test_only_a_named_worker_can_take_a_ticket_for_themselves(desk: Helpdesk) -> None:
    with pytest.raises(UsageError, match="give --as WORKER"):
        desk.assign([mask_of(0)], "me", Actor(named_by="--as WORKER"))
    assert desk.assign([mask_of(0)], "me", Actor("jane@corp.test"))[0].said == "owner jane@corp.test"
