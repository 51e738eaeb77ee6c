"""Finding and reading tickets: filters, paging, prefix masks, full-text search, attachments, history.

Every case runs the real `postdesk` command against a real database (SQLite, and PostgreSQL when
configured), with tickets filed through the real pipeline: in this process, and as a whole process
where its output goes to a pipe or a terminal.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import Group, LastAction, Priority, Status, Ticket, Worker
from core.settings import Settings
from core.staff import add_group, add_worker
from mailgate.deliver import deliver
from testkit import json_in_process, make_mail, run_cli, run_in_process


def file_mail(database: Database, settings: Settings, to: str = "support@example.com", **kwargs: object) -> str:
    mail = make_mail(to=to, **kwargs)  # type: ignore[arg-type]
    deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", (to,)))
    with database.read() as session:
        return session.scalars(select(Ticket.mask).order_by(Ticket.id.desc())).first()


def change(database: Database, which: str, **values: object) -> None:
    with database.write() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == which)).one()
        for name, value in values.items():
            setattr(ticket, name, value)


def masks(config: Path, *args: str) -> list[str]:
    return [row["mask"] for row in json_in_process(config, *args)]


@pytest.fixture
def desk(database: Database, settings: Settings) -> dict[str, str]:
    """Five tickets that differ in every field the filters look at."""
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_group(session, "Billing", "billing@example.com", auto_reply=False, close_notice=False)
        add_worker(session, "ann@staff.test", "Ann", ["Support"])
        add_worker(session, "bob@staff.test", "Bob", ["Billing"])
    made = {name: file_mail(database, settings, subject=f"{name} ticket", sender=f"{name}@customer.test")
            for name in ("old", "urgent", "mine", "billing", "answered")}
    made["billing"] = file_mail(database, settings, to="billing@example.com", subject="invoice twice",
                                sender="payer@customer.test")
    with database.write() as session:
        ann = session.scalars(select(Worker).where(Worker.email == "ann@staff.test")).one()
        billing = session.scalars(select(Group).where(Group.name == "Billing")).one()
        for ticket in session.scalars(select(Ticket)):
            if ticket.mask == made["mine"]:
                ticket.owner_id = ann.id
            if ticket.mask == made["urgent"]:
                ticket.priority = Priority.URGENT
            if ticket.mask == made["old"]:
                ticket.created_at = ticket.updated_at = datetime(2025, 1, 10, tzinfo=timezone.utc)
            if ticket.mask == made["answered"]:
                ticket.last_action, ticket.status = LastAction.WORKER_REPLIED, Status.WAITING
            assert ticket.group_id != billing.id or ticket.mask == made["billing"]
    return made


def test_filters_narrow_the_list(desk: dict[str, str], config_path: Path) -> None:
    everyone = set(masks(config_path, "tickets"))
    assert {m for k, m in desk.items() if k != "billing"} <= everyone and desk["billing"] in everyone
    assert masks(config_path, "tickets", "--owner", "ann@staff.test") == [desk["mine"]]
    assert masks(config_path, "tickets", "--owner", "me", "--as", "ann@staff.test") == [desk["mine"]]
    assert desk["mine"] not in masks(config_path, "tickets", "--owner", "none")
    assert masks(config_path, "tickets", "--priority", "urgent") == [desk["urgent"]]
    assert masks(config_path, "tickets", "--group", "billing") == [desk["billing"]]
    assert masks(config_path, "tickets", "--bucket", "Inbox", "--group", "Billing") == [desk["billing"]]
    assert masks(config_path, "tickets", "--waiting-on-customer") == [desk["answered"]]
    assert masks(config_path, "tickets", "--status", "waiting") == [desk["answered"]]
    assert masks(config_path, "tickets", "--created-to", "2025-06-01") == [desk["old"]]
    assert desk["old"] not in masks(config_path, "tickets", "--created-from", "2025-06-01 00:00")


def test_closed_and_deleted_need_asking_for(desk: dict[str, str], database: Database, config_path: Path) -> None:
    change(database, desk["urgent"], status=Status.CLOSED)
    change(database, desk["mine"], status=Status.DELETED)
    default = masks(config_path, "tickets")
    assert desk["urgent"] not in default and desk["mine"] not in default
    assert masks(config_path, "tickets", "--status", "closed", "--status", "deleted") == sorted(
        [desk["urgent"], desk["mine"]], key=masks(config_path, "tickets", "--status", "all").index)
    assert len(masks(config_path, "tickets", "--status", "all")) == 6


def test_newest_activity_first_sorting_and_paging(desk: dict[str, str], database: Database,
                                                  config_path: Path) -> None:
    change(database, desk["old"], updated_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    listed = masks(config_path, "tickets", "--status", "all")
    assert listed[0] == desk["old"]
    assert masks(config_path, "tickets", "--status", "all", "--reverse")[-1] == desk["old"]
    assert masks(config_path, "tickets", "--status", "all", "--sort", "created", "--reverse")[0] == desk["old"]
    assert masks(config_path, "tickets", "--status", "all", "--sort", "priority")[0] == desk["urgent"]
    pages = [masks(config_path, "tickets", "--status", "all", "--limit", "2", "--page", str(n)) for n in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [2, 2, 2, 0]
    assert sum(pages, []) == listed


@pytest.mark.sqlite_only
@pytest.mark.parametrize("args", [["--limit", "0"], ["--page", "0"], ["--created-from", "yesterday"],
                                  ["--sort", "colour"], ["--priority", "extreme"]])
def test_bad_filter_values_are_usage_errors(database: Database, config_path: Path, args: list[str]) -> None:
    result = run_in_process(config_path, "tickets", *args)
    assert result.returncode == 2 and b"Traceback" not in result.stderr


@pytest.mark.sqlite_only
def test_owner_me_without_knowing_who_is_one_line(database: Database, config_path: Path) -> None:
    result = run_in_process(config_path, "tickets", "--owner", "me")
    assert result.returncode == 1
    assert result.stderr.decode().strip().splitlines() == [
        "postdesk: --owner me needs to know who you are: give --as WORKER or set POSTDESK_WORKER"]


def test_a_mask_prefix_finds_one_ticket_and_refuses_several(database: Database, settings: Settings,
                                                            config_path: Path) -> None:
    first = file_mail(database, settings, subject="one")
    second = file_mail(database, settings, subject="two")
    change(database, first, mask="QQA-11111-111")
    change(database, second, mask="QQA-11122-222")
    assert json_in_process(config_path, "show", "qqa-1111")["mask"] == "QQA-11111-111"
    assert json_in_process(config_path, "show", "QQA-1112")["mask"] == "QQA-11122-222"
    ambiguous = run_in_process(config_path, "show", "QQA")
    assert ambiguous.returncode == 1
    assert ambiguous.stderr.decode().strip() == (
        "postdesk: QQA fits several tickets (QQA-11111-111, QQA-11122-222): give more of the mask")
    for given in ("QQB", "QQA-1111%", "QQA_"):
        missing = run_in_process(config_path, "show", given)
        assert missing.returncode == 1 and missing.stderr.decode().strip() == f"postdesk: no ticket with mask {given}"


def test_search_finds_every_word_ranked(database: Database, settings: Settings, config_path: Path) -> None:
    strong = file_mail(database, settings, subject="Printer on fire",
                       body="The printer caught fire. Fire everywhere near the printer.")
    weak = file_mail(database, settings, subject="Quarterly report",
                     body="Also, the printer down the hall once had a small fire.")
    file_mail(database, settings, subject="Printer jam", body="Paper stuck, nothing burning.")
    assert masks(config_path, "search", "printer", "fire") == [strong, weak]
    assert masks(config_path, "search", "PRINTERS", "FIRES") == [strong, weak]  # stemmed, any case
    assert masks(config_path, "search", "fire", "jam") == []
    found = json_in_process(config_path, "search", "jam")
    assert [t["mask"] for t in found] != [] and found[0]["subject"] == "Printer jam"
    assert found[0]["message_count"] == 1


def test_search_leaves_deleted_out_unless_asked(database: Database, settings: Settings, config_path: Path) -> None:
    mask = file_mail(database, settings, subject="Cheap watches", body="replica watches")
    change(database, mask, status=Status.DELETED)
    assert masks(config_path, "search", "watches") == []
    assert masks(config_path, "search", "watches", "--status", "deleted") == [mask]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("query", ['"', "NEAR(", "subject:x*", "*", "AND OR"])
def test_search_syntax_in_the_words_is_no_error(database: Database, settings: Settings, config_path: Path,
                                                query: str) -> None:
    file_mail(database, settings, subject="AND OR NEAR subject x")
    result = run_in_process(config_path, "search", query, "--json")
    assert b"Traceback" not in result.stderr
    if any(c.isalnum() for c in query):
        assert result.returncode == 0
    else:
        assert result.returncode == 1 and b"nothing to search for" in result.stderr


def test_attachments_are_numbered_and_saved(database: Database, settings: Settings, config_path: Path,
                                            tmp_path: Path) -> None:
    mask = file_mail(database, settings, attachments=[("a.txt", "text/plain", b"first\n"),
                                                      ("b.bin", "application/octet-stream", b"\x00\x01\x02")])
    shown = json_in_process(config_path, "show", mask)
    assert [(a["number"], a["filename"]) for a in shown["messages"][0]["attachments"]] == [(1, "a.txt"), (2, "b.bin")]
    target = tmp_path / "out.bin"
    saved = run_in_process(config_path, "attachment", mask, "2", "-o", str(target))
    assert saved.returncode == 0 and target.read_bytes() == b"\x00\x01\x02"
    again = run_in_process(config_path, "attachment", mask, "2", "-o", str(target))
    assert again.returncode == 1 and b"--force" in again.stderr
    assert run_in_process(config_path, "attachment", mask, "1", "-o", str(target), "--force").returncode == 0
    assert target.read_bytes() == b"first\n"
    to_stdout = run_in_process(config_path, "attachment", mask, "2", "-o", "-")
    assert to_stdout.returncode == 0 and to_stdout.stdout == b"\x00\x01\x02"
    missing = run_in_process(config_path, "attachment", mask, "3", "-o", str(tmp_path / "x"))
    assert missing.returncode == 1 and missing.stderr.decode().strip() == f"postdesk: {mask} has no attachment 3"
    assert not (tmp_path / "x").exists()


@pytest.mark.sqlite_only
def test_show_piped_is_plain_and_lists_history(database: Database, settings: Settings, config_path: Path) -> None:
    mask = file_mail(database, settings, body="The printer is on fire.",
                     attachments=[("log.txt", "text/plain", b"x")])
    result = run_cli(config_path, "show", mask, "--history")  # a whole process, its stdout a pipe
    out = result.stdout.decode()
    assert result.returncode == 0 and "\x1b[" not in out
    assert "The printer is on fire." in out and "attachment 1: log.txt (text/plain, 1 bytes)" in out
    assert "history" in out and "created: opened by mail" in out
    history = json_in_process(config_path, "show", mask, "--history")["history"]
    assert [e["action"] for e in history] == ["created"] and history[0]["actor"] == "alice@customer.test"


def _on_a_terminal(config: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run postdesk with a pseudo-terminal as stdin, stdout and stderr; returns its exit code and what it showed."""
    controller, terminal = os.openpty()
    try:
        process = subprocess.run([sys.executable, "-m", "workers", "--config", str(config), *args],
                                 stdin=terminal, stdout=terminal, stderr=terminal, env=env, timeout=120)
        os.set_blocking(controller, False)
        shown = b""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(controller, 65536):
                shown += chunk
        return process.returncode, shown.decode(errors="replace")
    finally:
        os.close(terminal)
        os.close(controller)


@pytest.mark.sqlite_only
def test_show_on_a_terminal_is_coloured_and_a_long_one_paged(database: Database, settings: Settings,
                                                              config_path: Path, tmp_path: Path) -> None:
    short = file_mail(database, settings, subject="short", body="Just one line.")
    long = file_mail(database, settings, subject="long", body="\n".join(f"line {n}" for n in range(200)))
    paged = tmp_path / "paged.txt"
    pager = tmp_path / "pager.sh"
    pager.write_text(f"#!/bin/sh\ncat > '{paged}'\n")
    pager.chmod(0o755)
    env = {**os.environ, "PAGER": str(pager), "LINES": "40", "COLUMNS": "100", "TERM": "xterm"}
    code, screen = _on_a_terminal(config_path, env, "show", short)
    assert code == 0 and "Just one line." in screen and "\x1b[" in screen
    assert not paged.exists(), "a conversation that fits the screen went to the pager"
    code, screen = _on_a_terminal(config_path, env, "show", long)
    assert code == 0 and "line 199" not in screen
    text = paged.read_text()
    assert "line 0" in text and "line 199" in text and "\x1b[" in text


@pytest.mark.sqlite_only
def test_a_locked_database_is_one_line_for_a_write_and_no_obstacle_to_a_read(
        database: Database, settings: Settings, config_path: Path) -> None:
    mask = file_mail(database, settings)
    text = config_path.read_text()
    config_path.write_text(text.replace("[database]\n", "[database]\nbusy_timeout_seconds = 0.5\n", 1))
    holder = database.engine.raw_connection()
    try:
        holder.cursor().execute("BEGIN IMMEDIATE")  # another writer, in the middle of its transaction
        assert masks(config_path, "tickets") == [mask]  # WAL: reading goes on
        result = run_in_process(config_path, "close", mask)
        assert result.returncode == 1 and b"Traceback" not in result.stderr
        assert result.stderr.decode().splitlines() == [
            "postdesk: database write failed: OperationalError('database is locked')"]
    finally:
        holder.rollback()
        holder.close()
    assert json_in_process(config_path, "show", mask)["status"] == "open"


def test_search_reaches_past_the_best_messages_when_their_tickets_are_left_out(database: Database,
                                                                             settings: Settings) -> None:
    """The best messages may all be a deleted ticket's: the search still finds the open one below them."""
    from core.desk import Actor, Helpdesk
    from core.ticket_views import SCANNED_PER_TICKET

    desk = Helpdesk(settings, database)
    desk.add_worker("wendy@corp.test", "Wendy")
    deleted = file_mail(database, settings, subject="Zeppelin", body="zeppelin zeppelin zeppelin")
    for n in range(SCANNED_PER_TICKET + 5):
        desk.comment([deleted], f"zeppelin zeppelin zeppelin {n}", Actor("wendy@corp.test"))
    change(database, deleted, status=Status.DELETED)
    wanted = file_mail(database, settings, subject="Airships", body="Is a zeppelin an airship? Asking for a friend.")
    assert [t["mask"] for t in desk.search("zeppelin", limit=1)] == [wanted]
    assert [t["mask"] for t in desk.search("zeppelin", limit=1, statuses=("deleted",))] == [deleted]
