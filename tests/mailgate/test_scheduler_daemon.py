"""The scheduler inside real `postdesk serve` processes: due tickets reopened, at start-up too, by two daemons once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Database, open_database
from core.due_tickets import SCHEDULER
from core.job_lease import schedule_job
from core.models import AuditEntry, Status, Ticket, utcnow
from core.schema import upgrade
from core.lifecycle import wait_until
from core.ticket_states import locked_ticket
from mailgate.scheduler import PURGE_JOB
from testkit import Daemon, daemons_sharing, wait_for
from ticket_rows import add_tickets, mask_of


def waiting(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == Status.WAITING)) or 0


def status_of(db: Database, mask: str) -> Status:
    with db.read() as session:
        return session.scalars(select(Ticket.status).where(Ticket.mask == mask)).one()


def reopen_entries_per_ticket(db: Database) -> dict[int, int]:
    with db.read() as session:
        return dict(session.execute(select(AuditEntry.ticket_id, func.count())
                                    .where(AuditEntry.actor == SCHEDULER, AuditEntry.detail.like("waiting -> open%"))
                                    .group_by(AuditEntry.ticket_id)).all())


def test_a_running_daemon_reopens_a_ticket_at_its_due_time_even_one_set_after_a_later_one(
        database: Database, daemon: Daemon) -> None:
    with database.write() as session:
        add_tickets(session, 2, status=Status.OPEN, now=utcnow())
    with database.write() as session:  # the daemon plans to wake in an hour ...
        wait_until(session, locked_ticket(session, mask_of(0)), utcnow() + timedelta(hours=1), actor="jane@corp.test",
                   now=utcnow())
    wait_for(lambda: waiting(database) == 1)
    due = utcnow() + timedelta(seconds=3)
    with database.write() as session:  # ... and must learn of this sooner one, set by another process
        wait_until(session, locked_ticket(session, mask_of(1)), due, actor="jane@corp.test", now=utcnow())
    wait_for(lambda: status_of(database, mask_of(1)) is Status.OPEN, timeout=20)
    assert status_of(database, mask_of(0)) is Status.WAITING
    with database.read() as session:
        history = session.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.detail, AuditEntry.at)
                                  .join(Ticket, Ticket.id == AuditEntry.ticket_id)
                                  .where(Ticket.mask == mask_of(1)).order_by(AuditEntry.id)).all()
    assert [tuple(entry[:3]) for entry in history] == [
        ("jane@corp.test", "status", f"open -> waiting: waiting until {due:%Y-%m-%d %H:%M} UTC"),
        ("scheduler", "status", f"waiting -> open: due time {due:%Y-%m-%d %H:%M:%S} UTC reached")]
    assert history[1].at >= due, "reopened before its due time"


def test_due_times_that_passed_while_the_daemon_was_down_are_reopened_at_start_up(
        database: Database, daemon: Daemon) -> None:
    assert daemon.stop() == 0
    with database.write() as session:
        add_tickets(session, 50, status=Status.WAITING, now=utcnow(),
                    waiting_until=lambda i: utcnow() - timedelta(hours=1, minutes=i))
    daemon.start()
    wait_for(lambda: waiting(database) == 0, timeout=20)
    assert list(reopen_entries_per_ticket(database).values()) == [1] * 50


@pytest.fixture
def two_daemons(postgres_url: str, tmp_path: Path) -> Iterator[list[Daemon]]:
    with daemons_sharing(postgres_url, tmp_path) as started:
        yield started


@pytest.fixture
def shared_database(postgres_url: str) -> Iterator[Database]:
    """The database the two daemons will share, with deleted tickets past retention and the purge due."""
    db = open_database(postgres_url)
    upgrade(db)
    with db.write() as session:
        add_tickets(session, 40, status=Status.DELETED, now=utcnow(), updated_at=utcnow() - timedelta(days=60),
                    prefix="DEL")
        schedule_job(session, PURGE_JOB, utcnow() - timedelta(minutes=1))
    yield db
    db.dispose()


def test_two_daemons_on_postgresql_reopen_each_due_ticket_once_and_purge_once(
        shared_database: Database, two_daemons: list[Daemon]) -> None:
    db = shared_database
    due = utcnow() + timedelta(seconds=3)  # both daemons plan to wake at this very moment
    with db.write() as session:
        first = add_tickets(session, 300, status=Status.WAITING, now=utcnow(), waiting_until=lambda i: due)
    wait_for(lambda: waiting(db) == 0, timeout=30)
    assert reopen_entries_per_ticket(db) == {ticket_id: 1 for ticket_id in first}
    # one daemon stops: the other takes every due ticket on
    assert two_daemons[0].stop() == 0
    with db.write() as session:
        later = add_tickets(session, 50, status=Status.WAITING, now=utcnow(), start=1000,
                            waiting_until=lambda i: utcnow() + timedelta(seconds=2))
    wait_for(lambda: waiting(db) == 0, timeout=30)
    assert reopen_entries_per_ticket(db) == {ticket_id: 1 for ticket_id in first + later}
    with db.read() as session:
        runs = list(session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "purge",
                                                                    AuditEntry.detail.like("purged %"))))
        deleted_left = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == Status.DELETED))
    assert runs == ["purged 40 tickets, 0 messages, 0 attachments, 0 attachment contents, 0 quarantined mails, "
                    "0 transcripts"]
    assert deleted_left == 0
