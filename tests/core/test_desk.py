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
from core.buckets import BucketView
from core.organizations import OrganizationView
from core.staff import WorkerView, add_worker
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


def test_a_group_outside_the_helpdesks_domains_is_refused_and_nothing_changes(desk: Helpdesk) -> None:
    before = desk.groups()
    with pytest.raises(UsageError, match="not a helpdesk address"):
        desk.add_group("Billing", "billing@elsewhere.test", auto_close_days=14)
    with pytest.raises(UsageError, match="auto-close days must be at least 1"):
        desk.add_group("Billing", "billing@example.com", auto_close_days=0)  # refused after the insert: rolled back
    assert desk.groups() == before
    added = desk.add_group("Billing", "billing@example.com", close_notice=True, auto_close_days=14, language="FR")
    assert (added.address, added.close_notice, added.auto_close_days, added.language) == (
        "billing@example.com", True, 14, "fr")
    with pytest.raises(UsageError, match="not a helpdesk address"):
        desk.edit_group("Billing", address="billing@elsewhere.test", no_auto_close=True)
    assert desk.edit_group("billing", no_auto_close=True).auto_close_days is None
    assert [g.name for g in desk.groups()] == ["Billing", "Support"]


def test_admin_commands_answer_with_views_and_default_to_the_default_group(desk: Helpdesk) -> None:
    added = desk.add_worker("Bob@Corp.Test", "Bob", ["support"])
    assert added == WorkerView("bob@corp.test", "Bob", ("Support",))
    assert desk.workers() == [added, WorkerView("jane@corp.test", "Jane", ())]
    assert desk.edit_worker("bob@corp.test", leave=["Support"]).groups == ()
    assert desk.add_bucket("Later") == BucketView("Support", "Later", 0)  # no group named: the settings' default
    desk.remove_bucket("later")
    assert desk.buckets() == [BucketView("Support", "Inbox", 3)]
    assert desk.add_organization("Acme", "@ACME.test") == OrganizationView("Acme", "acme.test", 0)
    assert desk.remove_organization("acme") == 0
    desk.remove_worker("bob@corp.test")
    assert desk.organizations() == [] and [w.email for w in desk.workers()] == ["jane@corp.test"]
