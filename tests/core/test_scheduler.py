"""The clock's work on a real database, time passed in: reopening due tickets, auto-close, the job lease."""

from __future__ import annotations

import threading
from email import message_from_bytes
from email.policy import default
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from core.db import Database
from core.due_tickets import SCHEDULER, close_long_waiting, next_due_at, reopen_due_tickets
from core.job_lease import claim_job, finish_job, job_is_due, release_job, renew_job, schedule_job
from core.groups import ensure_default_group
from core.models import AddressRow, AuditEntry, Group, OutboxItem, Status, Ticket, TicketRecipient, Worker
from core.settings import HelpdeskSettings
from core.staff import add_worker
from core.notify import Outbound
from testkit import text_of
from ticket_rows import add_messages, add_tickets

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
OUT = Outbound("postdesk.test", timedelta(hours=1))


def statuses(db: Database) -> dict[int, Status]:
    with db.read() as session:
        return dict(session.execute(select(Ticket.id, Ticket.status)).all())


def scheduler_entries(db: Database) -> list[tuple[int, str]]:
    with db.read() as session:
        return list(session.execute(select(AuditEntry.ticket_id, AuditEntry.detail)
                                    .where(AuditEntry.actor == SCHEDULER).order_by(AuditEntry.ticket_id)).all())


def test_only_tickets_whose_due_time_came_are_reopened_each_with_one_audit_entry(database: Database) -> None:
    with database.write() as session:
        due = add_tickets(session, 3, status=Status.WAITING, now=NOW,
                          waiting_until=lambda i: NOW - timedelta(minutes=i))
        later = add_tickets(session, 1, status=Status.WAITING, now=NOW, start=10,
                            waiting_until=lambda i: NOW + timedelta(hours=1))
        unrelated = add_tickets(session, 1, status=Status.OPEN, now=NOW, start=20,
                                waiting_until=lambda i: NOW - timedelta(days=1))  # reopened by mail already
    with database.write() as session:
        assert next_due_at(session) == NOW - timedelta(minutes=2)
        assert reopen_due_tickets(session, OUT, NOW) == 3
    with database.write() as session:
        assert reopen_due_tickets(session, OUT, NOW) == 0, "a ticket was reopened twice"
        assert next_due_at(session) == NOW + timedelta(hours=1)
        reopened = session.scalars(select(Ticket).where(Ticket.id.in_(due))).all()
    assert {t.status for t in reopened} == {Status.OPEN}
    assert {t.waiting_until for t in reopened} == {None} and {t.updated_at for t in reopened} == {NOW}
    assert statuses(database)[later[0]] is Status.WAITING and statuses(database)[unrelated[0]] is Status.OPEN
    assert scheduler_entries(database) == [
        (due[0], "waiting -> open: due time 2026-12-01 09:00:00 UTC reached"),
        (due[1], "waiting -> open: due time 2026-12-01 08:59:00 UTC reached"),
        (due[2], "waiting -> open: due time 2026-12-01 08:58:00 UTC reached")]


def test_reopening_goes_in_batches_earliest_first(database: Database) -> None:
    with database.write() as session:
        ids = add_tickets(session, 5, status=Status.WAITING, now=NOW,
                          waiting_until=lambda i: NOW - timedelta(seconds=i))
    with database.write() as session:
        assert reopen_due_tickets(session, OUT, NOW, limit=2) == 2
    assert [s for i, s in sorted(statuses(database).items())] == [Status.WAITING] * 3 + [Status.OPEN] * 2
    assert ids == sorted(ids)


def test_concurrent_reopeners_reopen_each_ticket_once(database: Database) -> None:
    """Four threads, each its own transactions, race over the same due tickets (two daemons' worth)."""
    with database.write() as session:
        ids = add_tickets(session, 400, status=Status.WAITING, now=NOW, waiting_until=lambda i: NOW)
    counts: list[int] = []
    start = threading.Barrier(4)

    def reopen() -> None:
        start.wait()
        while True:
            with database.write() as session:
                count = reopen_due_tickets(session, OUT, NOW, limit=25)
            counts.append(count)
            if count == 0:
                return

    threads = [threading.Thread(target=reopen) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == len(ids)
    assert sorted(ticket_id for ticket_id, _ in scheduler_entries(database)) == ids
    assert set(statuses(database).values()) == {Status.OPEN}


def test_auto_close_closes_only_tickets_waiting_untouched_past_the_groups_days(database: Database) -> None:
    with database.write() as session:
        old = add_tickets(session, 2, status=Status.WAITING, now=NOW, updated_at=NOW - timedelta(days=8))
        recent = add_tickets(session, 1, status=Status.WAITING, now=NOW, start=10,
                             updated_at=NOW - timedelta(days=6))
        with_due_time = add_tickets(session, 1, status=Status.WAITING, now=NOW, start=20,
                                    updated_at=NOW - timedelta(days=30),
                                    waiting_until=lambda i: NOW + timedelta(days=1))
        open_ = add_tickets(session, 1, status=Status.OPEN, now=NOW, start=30, updated_at=NOW - timedelta(days=30))
    with database.write() as session:
        assert close_long_waiting(session, OUT, NOW) == 0, "a group without auto-close days closed tickets"
        session.execute(update(Group).values(auto_close_days=7))
    with database.write() as session:
        assert close_long_waiting(session, OUT, NOW) == 2
    with database.write() as session:
        assert close_long_waiting(session, OUT, NOW) == 0
    now = statuses(database)
    assert [now[i] for i in old] == [Status.CLOSED] * 2
    assert [now[i] for i in recent + with_due_time] == [Status.WAITING] * 2 and now[open_[0]] is Status.OPEN
    assert scheduler_entries(database) == [(i, "waiting -> closed: waiting over 7 days") for i in old]


@pytest.mark.parametrize("notice, transcripts", [(True, False), (False, True)])
def test_auto_close_sends_the_close_notice_the_group_asks_for(database: Database, notice: bool,
                                                              transcripts: bool) -> None:
    """Asked for by close_notice, or by transcripts: a group keeping them mails the link whatever its notice."""
    with database.write() as session:
        ids = add_tickets(session, 1, status=Status.WAITING, now=NOW, updated_at=NOW - timedelta(days=3))
        add_messages(session, ids, NOW - timedelta(days=3))
        customer = session.scalar(select(AddressRow.id).where(AddressRow.email == "customer@outside.test"))
        session.add(TicketRecipient(ticket_id=ids[0], address_id=customer, added_at=NOW))
        session.execute(update(Group).values(auto_close_days=2, close_notice=notice, transcripts=transcripts))
    with database.write() as session:
        assert close_long_waiting(session, OUT, NOW) == 1
    with database.read() as session:
        notices = session.execute(select(OutboxItem.purpose, OutboxItem.rcpt_tos, OutboxItem.ticket_id,
                                         OutboxItem.raw)).all()
    assert [tuple(n[:3]) for n in notices] == [("close_notice", ["customer@outside.test"], ids[0])]
    assert (b"/transcripts/" in notices[0].raw) is transcripts


def test_a_reopened_ticket_tells_its_owner_or_else_its_groups_workers_once(database: Database) -> None:
    with database.write() as session:
        group = session.scalars(select(Group)).first() or ensure_default_group(session, HelpdeskSettings())
        add_worker(session, "jane@corp.test", "Jane", [group.name])
        add_worker(session, "bob@corp.test", "Bob", [group.name])
        owned, unowned = add_tickets(session, 2, status=Status.WAITING, now=NOW,
                                     waiting_until=lambda i: NOW - timedelta(minutes=1))
        session.get(Ticket, owned).owner_id = session.scalar(select(Worker.id).where(Worker.email == "bob@corp.test"))
    with database.write() as session:
        assert reopen_due_tickets(session, OUT, NOW) == 2
    with database.write() as session:
        assert reopen_due_tickets(session, OUT, NOW) == 0
    with database.read() as session:
        told = session.execute(select(OutboxItem.ticket_id, OutboxItem.rcpt_tos, OutboxItem.raw)
                               .where(OutboxItem.purpose == "reopened").order_by(OutboxItem.id)).all()
    assert [(ticket, rcpt) for ticket, rcpt, _ in told] == [
        (owned, ["bob@corp.test"]), (unowned, ["bob@corp.test"]), (unowned, ["jane@corp.test"])]
    texts = [text_of(message_from_bytes(raw, policy=default)) for _, _, raw in told]
    assert all("is open again: due time 2026-12-01 08:59:00 UTC reached." in text for text in texts), texts


def test_the_job_lease_lets_one_daemon_run_each_due_run_and_survives_a_dead_holder(database: Database) -> None:
    lease = timedelta(minutes=5)
    with database.write() as session:
        schedule_job(session, "purge", NOW)
        schedule_job(session, "purge", NOW + timedelta(days=1))  # a later schedule never postpones a due run
    with database.write() as session:
        assert job_is_due(session, "purge", NOW)
        assert claim_job(session, "purge", "one", NOW, lease)
        assert not claim_job(session, "purge", "two", NOW, lease), "two daemons hold one job"
        assert renew_job(session, "purge", "one", NOW + timedelta(minutes=4), lease)
        assert not renew_job(session, "purge", "two", NOW, lease)
    # "one" dies without finishing: its lease runs out, and the same run is due for "two"
    with database.write() as session:
        assert not claim_job(session, "purge", "two", NOW + timedelta(minutes=8), lease)
        assert claim_job(session, "purge", "two", NOW + timedelta(minutes=10), lease)
        assert not renew_job(session, "purge", "one", NOW + timedelta(minutes=10), lease), "a dead holder came back"
        assert not finish_job(session, "purge", "one", NOW + timedelta(days=1))
        assert finish_job(session, "purge", "two", NOW + timedelta(days=1))
    with database.write() as session:
        assert not job_is_due(session, "purge", NOW + timedelta(hours=1))
        assert not claim_job(session, "purge", "one", NOW + timedelta(hours=1), lease), "a finished run ran again"
        assert claim_job(session, "purge", "one", NOW + timedelta(days=1), lease)
        release_job(session, "purge", "one")
        assert claim_job(session, "purge", "two", NOW + timedelta(days=1), lease), "a released run was lost"


def test_only_one_of_two_simultaneous_claims_wins(database: Database) -> None:
    with database.write() as session:
        schedule_job(session, "purge", NOW)
    won: list[str] = []
    start = threading.Barrier(2)

    def claim(holder: str) -> None:
        start.wait()
        with database.write() as session:
            if claim_job(session, "purge", holder, NOW, timedelta(minutes=5)):
                won.append(holder)

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1


@pytest.mark.sqlite_only
def test_the_earliest_due_time_is_read_from_the_index(database: Database) -> None:
    with database.engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN SELECT min(waiting_until) FROM tickets "
                                          "WHERE status = 'waiting'").all()
    assert "ix_tickets_status_waiting_until" in " ".join(str(row) for row in plan)
