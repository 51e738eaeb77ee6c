"""The worker's actions on tickets (close, reopen, wait, delete, restore, spam, assign, move, priority, comment,
reply), run as whole `postdesk` processes on a real database: each one's effect, its audit entry, several masks
all or nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from core.buckets import add_bucket
from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import AuditEntry, Status, Ticket, utcnow
from core.settings import Settings
from core.staff import add_group, add_worker, edit_group
from mailgate.deliver import deliver
from mailgate.outbox_sender import OutboxSender
from testkit import ROOT, Sink, make_mail, run_cli, text_of
from ticket_rows import add_tickets, mask_of
from workers.cli import main

JANE, BOB = "jane@corp.test", "bob@corp.test"
CUSTOMERS = ("Alice Smith <alice@customer.test>", "Carl <carl@customer.test>", "Dee <dee@customer.test>")


@pytest.fixture(autouse=True)
def no_worker_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTDESK_WORKER", raising=False)


def desk(database: Database, settings: Settings) -> list[str]:
    """Jane (Support) and Bob (Support, Billing); Support sends close notices; each customer wrote in once."""
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        edit_group(session, "Support", close_notice=True)
        add_group(session, "Billing", "billing@example.com", True, False)
        add_worker(session, JANE, "Jane Doe", ["Support"])
        add_worker(session, BOB, "Bob Roe", ["Support", "Billing"])
        add_bucket(session, "Billing", "Refunds")
        add_bucket(session, "Support", "Later")
    for number, sender in enumerate(CUSTOMERS):
        mail = make_mail(sender=sender, subject=f"Problem {number}", body=f"Hello {number}\nIt broke.")
        deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))
    with database.read() as session:
        return list(session.scalars(select(Ticket.mask).order_by(Ticket.id)))


def in_process(config: Path, *args: str) -> Result:
    """The real command through click's runner, without a process start each (whole processes: see below)."""
    result = CliRunner().invoke(main, ["--config", str(config), *args], prog_name="postdesk")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def ok(config: Path, *args: str) -> list[str]:
    result = in_process(config, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()


def json_of(config: Path, *args: str) -> Any:
    return json.loads(in_process(config, *args, "--json").stdout)


def history(config: Path, mask: str) -> list[tuple[str, str, str]]:
    """The audit log as `show --history --json` prints it, without the `created` entry."""
    entries = json_of(config, "show", mask, "--history")["history"]
    assert entries[0]["action"] == "created"
    return [(e["actor"], e["action"], e["detail"]) for e in entries[1:]]


def audit_count(database: Database) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def test_status_actions_take_several_masks_and_are_audited(database: Database, settings: Settings,
                                                         config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = desk(database, settings)
    closing = run_cli(config_path, "close", a[:6].lower(), b, "--as", JANE)  # once as a whole process
    assert (closing.returncode, closing.stdout.decode().splitlines()) == (0, [f"{a}: closed", f"{b}: closed"])
    assert ok(config_path, "close", a, "--as", JANE) == [f"{a}: closed already"]
    notices = [item for item in json_of(config_path, "outbox") if item["purpose"] == "close_notice"]
    assert sorted((n["ticket"], tuple(n["recipients"])) for n in notices) == sorted(
        [(a, ("alice@customer.test",)), (b, ("carl@customer.test",))])  # once each: closing again sent nothing

    monkeypatch.setenv("POSTDESK_WORKER", BOB)
    assert ok(config_path, "reopen", a, b) == [f"{a}: open", f"{b}: open"]
    assert ok(config_path, "wait", b, a, "--until", "2099-01-15 09:30") == [
        f"{b}: waiting until 2099-01-15 09:30 UTC", f"{a}: waiting until 2099-01-15 09:30 UTC"]
    monkeypatch.delenv("POSTDESK_WORKER")
    assert ok(config_path, "reopen", a) == [f"{a}: open"]
    assert ok(config_path, "delete", c, b) == [f"{c}: deleted", f"{b}: deleted"]
    assert ok(config_path, "restore", c, b, "--as", JANE) == [f"{c}: restored, open", f"{b}: restored, open"]
    assert ok(config_path, "spam", c, "--as", JANE) == [f"{c}: trained spam, ticket deleted"]
    assert ok(config_path, "notspam", c, "--as", BOB) == [f"{c}: trained not_spam, ticket open"]

    shown = {t["mask"]: t for t in json_of(config_path, "tickets", "--status", "all")}
    assert [(shown[m]["status"], shown[m]["waiting_until"]) for m in (a, b, c)] == [
        ("open", None), ("open", None), ("open", None)]  # leaving `waiting` (here by delete) drops the due time
    assert history(config_path, a) == [
        (JANE, "status", "open -> closed: closed"), (BOB, "status", "closed -> open: reopened"),
        (BOB, "status", "open -> waiting: waiting until 2099-01-15 09:30 UTC"),
        ("postdesk cli", "status", "waiting -> open: reopened")]
    assert history(config_path, b)[-2:] == [("postdesk cli", "status", "waiting -> deleted: deleted"),
                                            (JANE, "status", "deleted -> open: restored")]
    assert history(config_path, c) == [
        ("postdesk cli", "status", "open -> deleted: deleted"), (JANE, "status", "deleted -> open: restored"),
        (JANE, "training", "spam"), (JANE, "status", "open -> deleted: marked as spam"),
        (BOB, "training", "not_spam"), (BOB, "status", "deleted -> open: marked as not spam")]


def test_assign_move_and_priority(database: Database, settings: Settings, config_path: Path) -> None:
    a, b, c = desk(database, settings)
    assert ok(config_path, "assign", a, b, "--owner", "me", "--as", JANE) == [f"{a}: owner {JANE}", f"{b}: owner {JANE}"]
    assert ok(config_path, "assign", a, "--owner", "Bob@Corp.Test") == [f"{a}: owner {BOB}"]
    assert ok(config_path, "assign", b, c, "--owner", "none", "--as", BOB) == [f"{b}: owner none",
                                                                             f"{c}: owner none already"]
    assert ok(config_path, "priority", a, c, "URGENT", "--as", BOB) == [f"{a}: priority urgent",
                                                                       f"{c}: priority urgent"]
    assert ok(config_path, "priority", a, "urgent") == [f"{a}: priority urgent already"]
    assert ok(config_path, "move", a, "--group", "billing", "--bucket", "refunds", "--as", BOB) == [
        f"{a}: moved to Billing/Refunds"]
    assert ok(config_path, "move", b, c, "--bucket", "Later", "--as", JANE) == [
        f"{b}: moved to Support/Later", f"{c}: moved to Support/Later"]
    assert ok(config_path, "move", c, "--group", "Billing") == [f"{c}: moved to Billing/Inbox"]
    assert ok(config_path, "move", c, "--group", "Billing") == [f"{c}: in Billing/Inbox already"]

    shown = {t["mask"]: t for t in json_of(config_path, "tickets")}
    assert [(shown[m]["owner"], shown[m]["priority"], shown[m]["group"], shown[m]["bucket"]) for m in (a, b, c)] == [
        (BOB, "urgent", "Billing", "Refunds"), (None, "normal", "Support", "Later"),
        (None, "urgent", "Billing", "Inbox")]
    assert history(config_path, a) == [
        (JANE, "owner", f"none -> {JANE}"), ("postdesk cli", "owner", f"{JANE} -> {BOB}"),
        (BOB, "priority", "normal -> urgent"), (BOB, "move", "Support/Inbox -> Billing/Refunds")]
    assert history(config_path, c) == [
        (BOB, "priority", "normal -> urgent"), (JANE, "move", "Support/Inbox -> Support/Later"),
        ("postdesk cli", "move", "Support/Later -> Billing/Inbox")]


def test_comment_stays_inside_and_reply_reaches_the_customer(database: Database, settings: Settings,
                                                           config_path: Path, sink: Sink) -> None:
    a, b, _ = desk(database, settings)
    note = "Called them: the invoice comes Monday."
    assert ok(config_path, "comment", a, b[:6], note, "--as", JANE) == [
        f"{a}: comment filed, ticket open", f"{b}: comment filed, ticket open"]
    assert ok(config_path, "reply", a, "Unplug it, then plug it in again.", "--as", JANE) == [
        f"{a}: reply filed, ticket waiting"]
    OutboxSender(database, settings.relay, settings.smtp.hostname).send_due()

    (answer,) = [m for m in sink.to("alice@customer.test") if "Jane Doe" in str(m["From"])]
    assert "Unplug it, then plug it in again." in text_of(answer)
    assert not [raw for _, _, raw in sink.received if b"invoice comes Monday" in raw]
    shown = json_of(config_path, "show", a, "--history")
    assert [(m["kind"], m["author"], m["text"]) for m in shown["messages"]] == [
        ("inbound", None, "Hello 0\nIt broke."), ("comment", JANE, note),
        ("reply", JANE, "Unplug it, then plug it in again.")]
    comment_id, reply_id = shown["messages"][1]["message_id"], shown["messages"][2]["message_id"]
    assert [(e["actor"], e["action"], e["detail"]) for e in shown["history"][1:]] == [
        (JANE, "comment", comment_id), (JANE, "reply", reply_id),
        (JANE, "training", "not_spam"), (JANE, "status", "open -> waiting: worker replied")]
    assert history(config_path, b) == [(JANE, "comment", json_of(config_path, "show", b)["messages"][1]["message_id"])]


def at_a_terminal(config: Path, editor: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`postdesk` as a worker types it: stdin a terminal (a pseudo-terminal here), $EDITOR set."""
    leader, follower = os.openpty()
    env = {key: value for key, value in os.environ.items() if key != "VISUAL"}
    try:
        return subprocess.run([sys.executable, "-m", "workers", "--config", str(config), *args], stdin=follower,
                              capture_output=True, cwd=ROOT, timeout=60, env={**env, "EDITOR": str(editor)})
    finally:
        os.close(leader)
        os.close(follower)


def editor_script(folder: Path, name: str, body: str) -> Path:
    script = folder / name
    script.write_text(f"#!/bin/sh\ncp \"$1\" \"{folder}/template-{name}.txt\"\n{body}\n")
    script.chmod(0o755)
    return script


@pytest.mark.sqlite_only
def test_reply_without_text_is_written_in_the_editor(database: Database, settings: Settings, config_path: Path,
                                                    sink: Sink, tmp_path: Path) -> None:
    a, _, _ = desk(database, settings)
    writes = editor_script(tmp_path, "writes", "{ printf '#priority high\\nThe new fuse is in the post.\\n'; "
                                               "cat \"$1\"; } > \"$1.new\" && cat \"$1.new\" > \"$1\"")
    result = at_a_terminal(config_path, writes, "reply", a, "--as", JANE)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == [f"{a}: reply filed, ticket waiting"]
    template = (tmp_path / "template-writes.txt").read_text()
    assert "On 2026-11-20 09:30 UTC, Alice Smith wrote:\n> Hello 0\n> It broke.\n" in template
    OutboxSender(database, settings.relay, settings.smtp.hostname).send_due()
    (answer,) = [m for m in sink.to("alice@customer.test") if "Jane Doe" in str(m["From"])]
    assert "The new fuse is in the post." in text_of(answer) and "It broke" not in text_of(answer)
    assert json_of(config_path, "show", a)["priority"] == "high"

    unchanged, touched = (editor_script(tmp_path, "quits", "true"), editor_script(tmp_path, "saves", "touch \"$1\""))
    emptied = editor_script(tmp_path, "empties", ": > \"$1\"")
    for editor, line in ((unchanged, "postdesk: reply not sent: the text was left unchanged"),
                         (touched, "postdesk: reply not sent: the text was left unchanged"),
                         (emptied, "postdesk: reply not sent: the text is empty")):
        result = at_a_terminal(config_path, editor, "reply", a, "--as", JANE)
        assert (result.returncode, result.stderr.decode().splitlines()) == (1, [line]), editor.name
    assert json_of(config_path, "show", a)["message_count"] == 2


@pytest.mark.sqlite_only
def test_one_bad_mask_or_refusal_changes_nothing(database: Database, config_path: Path, tmp_path: Path) -> None:
    with database.write() as session:
        add_tickets(session, 2, status=Status.OPEN, now=utcnow())
        add_tickets(session, 1, status=Status.DELETED, now=utcnow(), start=1000)
        add_worker(session, JANE, "Jane Doe", ["Support"])
    a, b, deleted = mask_of(0), mask_of(1), mask_of(1000)
    failures = [
        (("close", a, "NOP-00000-000"), "postdesk: no ticket with mask NOP-00000-000"),
        (("close", a, "TST-00000"), "postdesk: TST-00000 fits several tickets (TST-00000-000, TST-00000-001):"
                                    " give more of the mask"),
        (("close", a, deleted), f"postdesk: {deleted} is deleted; restore it first"),
        (("reopen", b, deleted), f"postdesk: {deleted} is deleted; restore it first"),
        (("assign", a, deleted, "--owner", "none"), f"postdesk: {deleted} is deleted; restore it first"),
        (("move", deleted, "--group", "Support"), f"postdesk: {deleted} is deleted; restore it first"),
        (("priority", deleted, "high"), f"postdesk: {deleted} is deleted; restore it first"),
        (("comment", deleted, "note", "--as", JANE), f"postdesk: {deleted} is deleted; restore it first"),
        (("delete", a, b, deleted), f"postdesk: {deleted} is deleted already"),
        (("restore", deleted, a), f"postdesk: {a} is open, not deleted"),
        (("wait", a, b, "--until", "someday"),
         "postdesk: not a duration or date: 'someday' (use 3d or 2026-12-01 09:00)"),
        (("assign", a, b, "--owner", "ghost@corp.test"), "postdesk: no worker with address ghost@corp.test"),
        (("assign", a, "--owner", "me"),
         "postdesk: --owner me needs to know who you are: give --as WORKER or set POSTDESK_WORKER"),
        (("priority", a, "high", "--as", "ghost@corp.test"), "postdesk: no worker with address ghost@corp.test"),
        (("move", a, b, "--group", "Nope"), "postdesk: no group named 'Nope'"),
        (("move", a, "--group", "Support", "--bucket", "Nope"), "postdesk: group Support has no bucket 'Nope'"),
        (("comment", a, "NOP", "note", "--as", JANE), "postdesk: no ticket with mask NOP"),
        (("comment", a, "  ", "--as", JANE), "postdesk: no text: the comment is empty"),
        (("reply", a, "", "--as", JANE), "postdesk: no text: the reply is empty"),
        (("spam", a, "NOP-1", "--as", JANE), "postdesk: no ticket with mask NOP-1"),
    ]
    for args, line in failures:
        result = in_process(config_path, *args)
        assert (result.exit_code, result.stderr.splitlines()) == (1, [line]), args
    text = tmp_path / "text.txt"
    text.write_text("hi")
    usage = [
        (("close",), "Missing argument 'MASK...'."),
        (("priority", a), "Missing argument 'MASK...'."),
        (("priority", a, "soon"), "Invalid value for 'LEVEL': 'soon' is not one of 'low', 'normal', 'high', 'urgent'."),
        (("move", a), "give --group G, --bucket B, or both"),
        (("assign", a), "Missing option '--owner'."),
        (("comment", a, "note"), "comment writes as a worker: give --as WORKER or set POSTDESK_WORKER"),
        (("reply", a, "hello"), "reply writes as a worker: give --as WORKER or set POSTDESK_WORKER"),
        (("reply", a, "hi", "--file", str(text), "--as", JANE), "give the text once: as TEXT or with --file"),
    ]
    for args, line in usage:
        result = in_process(config_path, *args)
        assert (result.exit_code, result.stderr.splitlines()[0].split()[:2], result.stderr.splitlines()[-1]) == (
            2, ["Usage:", "postdesk"], f"Error: {line}"), args
    crash = run_cli(config_path, "close", a, "NOP-00000-000")  # and as a whole process: one line, no traceback
    assert (crash.returncode, crash.stderr) == (1, b"postdesk: no ticket with mask NOP-00000-000\n")
    with database.read() as session:
        statuses = dict(session.execute(select(Ticket.mask, Ticket.status)).all())
        owners = set(session.scalars(select(Ticket.owner_id)))
    assert statuses == {a: Status.OPEN, b: Status.OPEN, deleted: Status.DELETED} and owners == {None}
    assert audit_count(database) == 0
