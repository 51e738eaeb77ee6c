"""The purge on a real database: what goes, what stays (shared attachments, restored tickets), dry runs, batches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.models import (AddressRow, Attachment, AuditEntry, Blob, Message, QuarantineItem, Status, Ticket,
                         ThreadKey, KeyOrigin)
from core.purge import Cutoffs, PurgeReport, count_purgeable, run_purge
from core.lifecycle import restore_ticket
from core.ticket_states import locked_ticket
from ticket_rows import add_messages, add_tickets, mask_of

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=40)
CUTOFFS = Cutoffs.older_than(timedelta(days=30), NOW)
SHARED, UNIQUE, OTHER = b"shared contract.pdf", b"only on the spam", b"another"


def purge(db: Database, cutoffs: Cutoffs = CUTOFFS, limit: int = 1000, check_blobs_every: int = 50) -> PurgeReport:
    return run_purge(db, cutoffs, actor="tester", clock=lambda: NOW, limit=limit, check_blobs_every=check_blobs_every)


def count(db: Database, model: type) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def blobs(db: Database) -> set[bytes]:
    with db.read() as session:
        return set(session.scalars(select(Blob.data)))


def test_a_purge_keeps_an_attachment_another_message_still_uses(database: Database) -> None:
    with database.write() as session:
        gone = add_tickets(session, 1, status=Status.DELETED, now=OLD)
        kept = add_tickets(session, 1, status=Status.OPEN, now=OLD, start=1)
        add_messages(session, gone, OLD, attachments=[SHARED, UNIQUE])
        add_messages(session, kept, OLD, attachments=[SHARED])
        session.add(ThreadKey(message_id="<gone@outside.test>", ticket_id=gone[0], origin=KeyOrigin.RECEIVED))
    with database.read() as session:
        predicted = count_purgeable(session, CUTOFFS)
    report = purge(database)
    assert report == predicted == PurgeReport(tickets=1, messages=1, attachments=2, blobs=1)
    assert blobs(database) == {SHARED}
    with database.read() as session:
        assert list(session.scalars(select(Ticket.id))) == kept
        assert session.scalar(select(func.count()).select_from(Message).where(Message.ticket_id == kept[0])) == 1
        assert session.scalar(select(func.count()).select_from(ThreadKey)) == 0
        assert session.scalar(select(func.count()).select_from(Attachment)) == 1
    # once the last message carrying it goes, so does the shared content
    with database.write() as session:
        session.get(Ticket, kept[0]).status = Status.DELETED  # type: ignore[union-attr]
    assert purge(database) == PurgeReport(tickets=1, messages=1, attachments=1, blobs=1)
    assert blobs(database) == set() and count(database, Message) == 0


def test_a_dry_run_counts_and_changes_nothing(database: Database) -> None:
    with database.write() as session:
        ids = add_tickets(session, 3, status=Status.DELETED, now=OLD)
        add_messages(session, ids, OLD, attachments=[SHARED])
        session.add(QuarantineItem(received_at=OLD, quarantined_at=OLD, source="smtp", reason="unparseable",
                                   raw=b"junk"))
    with database.read() as session:
        report = count_purgeable(session, CUTOFFS)
    assert report == PurgeReport(tickets=3, messages=3, attachments=3, blobs=1, quarantined=1)
    assert (count(database, Ticket), count(database, Message), count(database, Attachment),
            count(database, Blob), count(database, QuarantineItem), count(database, AuditEntry)) == (3, 3, 3, 1, 1, 0)


def test_only_what_was_deleted_or_quarantined_before_the_cutoff_goes(database: Database) -> None:
    with database.write() as session:
        add_tickets(session, 2, status=Status.DELETED, now=OLD)
        recent = add_tickets(session, 1, status=Status.DELETED, now=NOW - timedelta(days=10), start=10)
        closed = add_tickets(session, 1, status=Status.CLOSED, now=OLD, start=20)
        for when, reason in ((OLD, "old"), (NOW - timedelta(days=1), "recent")):
            session.add(QuarantineItem(received_at=when, quarantined_at=when, source="smtp", reason=reason, raw=b"x"))
    report = purge(database)
    assert (report.tickets, report.quarantined) == (2, 1)
    with database.read() as session:
        assert set(session.scalars(select(Ticket.id))) == set(recent + closed)
        assert list(session.scalars(select(QuarantineItem.reason))) == ["recent"]
        entries = session.execute(select(AuditEntry.ticket_id, AuditEntry.actor, AuditEntry.action, AuditEntry.detail)
                                  .order_by(AuditEntry.id)).all()
    assert [tuple(e) for e in entries] == [
        (None, "tester", "purge", f"{mask_of(0)}: 0 messages, 0 attachments"),
        (None, "tester", "purge", f"{mask_of(1)}: 0 messages, 0 attachments"),
        (None, "tester", "purge", "purged 2 tickets, 0 messages, 0 attachments, 0 attachment contents, "
                                  "1 quarantined mails, 0 transcripts")]


def test_a_ticket_restored_before_the_purge_stays(database: Database) -> None:
    with database.write() as session:
        add_tickets(session, 2, status=Status.DELETED, now=OLD)
    with database.write() as session:
        restore_ticket(session, locked_ticket(session, mask_of(1)), actor="jane@corp.test", now=OLD)
    assert purge(database).tickets == 1
    with database.read() as session:
        assert session.execute(select(Ticket.mask, Ticket.status)).all() == [(mask_of(1), Status.OPEN)]


@pytest.mark.parametrize("check_blobs_every", [1, 2, 50])
def test_batches_add_up_and_a_blob_shared_across_batches_goes_once(database: Database, check_blobs_every: int) -> None:
    with database.write() as session:
        ids = add_tickets(session, 7, status=Status.DELETED, now=OLD)
        for offset, ticket_id in enumerate(ids):
            add_messages(session, [ticket_id], OLD + timedelta(seconds=offset), attachments=[SHARED, OTHER])
        stays = add_tickets(session, 1, status=Status.OPEN, now=OLD, start=100)
        add_messages(session, stays, OLD, attachments=[OTHER])
    with database.read() as session:
        predicted = count_purgeable(session, CUTOFFS)
    report = purge(database, limit=3, check_blobs_every=check_blobs_every)
    assert report == predicted == PurgeReport(tickets=7, messages=7, attachments=14, blobs=1)
    assert blobs(database) == {OTHER}
    assert purge(database, limit=3) == PurgeReport(), "a second purge found more"
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(AddressRow)) == 1  # addresses are shared, kept


def test_tickets_of_one_moment_deleted_and_held_go_in_batches_each_once(database: Database) -> None:
    """A batch resumes after the last ticket it claimed, by time and id: ties across batches are neither
    skipped nor taken twice, and held spam follows the deleted tickets."""
    with database.write() as session:
        deleted = add_tickets(session, 5, status=Status.DELETED, now=OLD)
        held = add_tickets(session, 4, status=Status.SPAM, now=OLD, start=10)
        add_messages(session, deleted + held, OLD)
    assert purge(database, limit=2) == PurgeReport(tickets=9, messages=9)
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 0
        details = session.scalars(select(AuditEntry.detail).where(AuditEntry.detail.like("TST-%"))
                                  .order_by(AuditEntry.id)).all()
    assert details == [f"{mask_of(i)}: 1 messages, 0 attachments" for i in (0, 1, 2, 3, 4, 10, 11, 12, 13)]
