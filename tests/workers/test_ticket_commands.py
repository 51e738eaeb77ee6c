"""`postdesk wait`, `delete`, `restore`, `purge` and group auto-close on a real database, run in process (a refusal
also as a whole process)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.models import AuditEntry, Status, Ticket, utcnow
from testkit import json_in_process, run_cli, run_in_process
from ticket_rows import add_messages, add_tickets, mask_of


def ok(config: Path, *args: str) -> str:
    result = run_in_process(config, *args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


def ticket(db: Database, mask: str) -> Ticket:
    with db.read() as session:
        return session.scalars(select(Ticket).where(Ticket.mask == mask)).one()


def history(db: Database, mask: str) -> list[tuple[str, str, str]]:
    with db.read() as session:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.detail)
            .join(Ticket, Ticket.id == AuditEntry.ticket_id).where(Ticket.mask == mask).order_by(AuditEntry.id))]


def deleted_masks(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(Ticket.mask).where(Ticket.status == Status.DELETED).order_by(Ticket.mask)))


def test_wait_sets_the_due_time_for_a_duration_or_until_a_time(database: Database, config_path: Path) -> None:
    with database.write() as session:
        add_tickets(session, 1, status=Status.OPEN, now=utcnow())
    before = utcnow()
    ok(config_path, "worker", "add", "jane@corp.test", "--name", "Jane")
    assert ok(config_path, "wait", mask_of(0).lower(), "--for", "3d", "--as", "jane@corp.test").startswith(
        f"{mask_of(0)}: waiting until ")
    waited = ticket(database, mask_of(0))
    assert waited.status is Status.WAITING and waited.waiting_until is not None
    assert before + timedelta(days=3) <= waited.waiting_until <= utcnow() + timedelta(days=3)
    assert ok(config_path, "wait", mask_of(0), "--until", "2099-01-15 09:30") == \
        f"{mask_of(0)}: waiting until 2099-01-15 09:30 UTC"
    assert ticket(database, mask_of(0)).waiting_until == datetime(2099, 1, 15, 9, 30, tzinfo=timezone.utc)
    assert history(database, mask_of(0)) == [
        ("jane@corp.test", "status", f"open -> waiting: waiting until {waited.waiting_until:%Y-%m-%d %H:%M} UTC"),
        ("postdesk cli", "waiting", "waiting until 2099-01-15 09:30 UTC")]


def test_delete_and_restore_round_trip_with_their_history(database: Database, config_path: Path) -> None:
    with database.write() as session:
        add_tickets(session, 1, status=Status.OPEN, now=utcnow())
    assert ok(config_path, "delete", mask_of(0)) == f"{mask_of(0)}: deleted"
    assert ticket(database, mask_of(0)).status is Status.DELETED
    assert ok(config_path, "restore", mask_of(0)) == f"{mask_of(0)}: restored, open"
    assert ticket(database, mask_of(0)).status is Status.OPEN
    assert history(database, mask_of(0)) == [("postdesk cli", "status", "open -> deleted: deleted"),
                                             ("postdesk cli", "status", "deleted -> open: restored")]
    shown = json_in_process(config_path, "show", mask_of(0), "--history")["history"]
    assert [(e["actor"], e["action"], e["detail"]) for e in shown] == history(database, mask_of(0))


@pytest.mark.sqlite_only
def test_bad_input_is_one_line_exit_1_and_changes_nothing(database: Database, config_path: Path) -> None:
    with database.write() as session:
        add_tickets(session, 1, status=Status.OPEN, now=utcnow())
        add_tickets(session, 1, status=Status.DELETED, now=utcnow(), start=1)
    cases = [
        (("wait", mask_of(0), "--until", "next tuesday"),
         "postdesk: not a duration or date: 'next tuesday' (use 3d or 2026-12-01 09:00)"),
        (("wait", mask_of(0), "--until", "2001-01-01 10:00"),
         "postdesk: the due time 2001-01-01 10:00 UTC is not in the future"),
        (("wait", mask_of(0), "--for", "soon"), "postdesk: not a duration: 'soon' (use e.g. 30m, 4h, 3d, 2w)"),
        (("wait", mask_of(0)), "postdesk: give either --until TIME or --for DURATION"),
        (("wait", mask_of(0), "--for", "1d", "--until", "2099-01-01"),
         "postdesk: give either --until TIME or --for DURATION"),
        (("wait", "NOP-00000-000", "--for", "1d"), "postdesk: no ticket with mask NOP-00000-000"),
        (("wait", mask_of(1), "--for", "1d"), f"postdesk: {mask_of(1)} is deleted; restore it first"),
        (("wait", mask_of(0), "--for", "1d", "--as", "ghost@corp.test"),
         "postdesk: no worker with address ghost@corp.test"),
        (("delete", mask_of(1)), f"postdesk: {mask_of(1)} is deleted already"),
        (("restore", mask_of(0)), f"postdesk: {mask_of(0)} is open, not deleted"),
        (("restore", "NOP-00000-000"), "postdesk: no ticket with mask NOP-00000-000"),
        (("purge", "--older-than", "a while"), "postdesk: not a duration: 'a while' (use e.g. 30m, 4h, 3d, 2w)"),
        (("group", "edit", "Support", "--auto-close-days", "3", "--no-auto-close"),
         "postdesk: give either --auto-close-days N or --no-auto-close"),
        (("group", "edit", "Support", "--auto-close-days", "0"),
         "postdesk: auto-close days must be at least 1, not 0"),
        (("group", "edit", "Nope", "--auto-close-days", "3"), "postdesk: no group named 'Nope'"),
    ]
    for number, (args, line) in enumerate(cases):
        run = run_cli if number == 0 else run_in_process  # the first as a whole process too
        result = run(config_path, *args)
        assert (result.returncode, result.stderr.decode().strip().splitlines()) == (1, [line]), args
    assert (ticket(database, mask_of(0)).status, ticket(database, mask_of(1)).status) == (Status.OPEN, Status.DELETED)
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_purge_dry_run_changes_nothing_and_the_purge_reports_what_went(database: Database, config_path: Path) -> None:
    now = utcnow()
    with database.write() as session:
        old = add_tickets(session, 2, status=Status.DELETED, now=now, updated_at=now - timedelta(days=10))
        add_messages(session, old, now, attachments=[b"a shared file"])
        add_tickets(session, 1, status=Status.DELETED, now=now, start=10, updated_at=now - timedelta(days=2))
    expected = {"tickets": 2, "messages": 2, "attachments": 2, "blobs": 1, "quarantined": 0, "transcripts": 0}
    assert json_in_process(config_path, "purge", "--older-than", "7d", "--dry-run") == {"dry_run": True, **expected}
    assert deleted_masks(database) == [mask_of(0), mask_of(1), mask_of(10)]
    assert ok(config_path, "purge", "--older-than", "7d") == (
        "purged: 2 tickets, 2 messages, 2 attachments, 1 attachment contents, 0 quarantined mails, 0 transcripts")
    assert deleted_masks(database) == [mask_of(10)]
    # the default is the retention setting: 30 days, so the last one stays
    assert ok(config_path, "purge") == (
        "purged: 0 tickets, 0 messages, 0 attachments, 0 attachment contents, 0 quarantined mails, 0 transcripts")


def test_groups_take_auto_close_days(config_path: Path) -> None:
    ok(config_path, "group", "add", "Billing", "--address", "billing@example.com", "--auto-close-days", "14")
    assert ok(config_path, "group", "edit", "Support", "--auto-close-days", "3") == \
        "group Support: auto-close after 3 days"
    days = {g["name"]: g["auto_close_days"] for g in json_in_process(config_path, "group", "list")}
    assert days == {"Billing": 14, "Support": 3}
    assert ok(config_path, "group", "edit", "billing", "--no-auto-close") == "group Billing: no auto-close"
    assert {g["name"]: g["auto_close_days"] for g in json_in_process(config_path, "group", "list")}["Billing"] is None


def test_spam_verdicts_are_in_the_history_with_who_gave_them(database: Database, config_path: Path) -> None:
    with database.write() as session:
        add_messages(session, add_tickets(session, 1, status=Status.OPEN, now=utcnow()), utcnow())
    ok(config_path, "spam", mask_of(0))
    ok(config_path, "notspam", mask_of(0))
    assert history(database, mask_of(0)) == [
        ("postdesk cli", "training", "spam"), ("postdesk cli", "status", "open -> deleted: marked as spam"),
        ("postdesk cli", "training", "not_spam"), ("postdesk cli", "status", "deleted -> open: marked as not spam")]
