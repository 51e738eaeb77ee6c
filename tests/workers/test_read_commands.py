"""`postdesk tickets` and `postdesk show` against a real database, run in process (piped output as a whole process)."""

from __future__ import annotations

import pytest

from pathlib import Path

from sqlalchemy import select

from core.db import Database
from core.inbound import Envelope
from core.models import Status, Ticket
from core.settings import Settings
from mailgate.deliver import deliver
from testkit import json_in_process, make_mail, run_cli, run_in_process

TICKET_KEYS = {"mask", "subject", "status", "priority", "group", "bucket", "owner", "organization", "created",
               "updated", "last_action", "first_wrote", "last_wrote", "recipients", "message_count",
               "waiting_until", "spam_score", "interesting_words", "spam_training"}
MESSAGE_KEYS = {"message_id", "from", "to", "cc", "subject", "date", "text", "attachments"}


def file_mail(database: Database, settings: Settings, **kwargs: object) -> str:
    mail = make_mail(**kwargs)  # type: ignore[arg-type]
    deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))
    with database.read() as session:
        return session.scalars(select(Ticket.mask).order_by(Ticket.id.desc())).first()


def set_status(database: Database, mask: str, status: Status) -> None:
    with database.write() as session:
        session.scalars(select(Ticket).where(Ticket.mask == mask)).one().status = status


def test_tickets_default_hides_closed_deleted_and_held_spam(database: Database, settings: Settings, config_path: Path) -> None:
    masks = {s: file_mail(database, settings, subject=f"about {s.value}") for s in Status}
    for status, mask in masks.items():
        set_status(database, mask, status)
    listed = json_in_process(config_path, "tickets")
    assert {t["status"] for t in listed} == {"open", "waiting"}
    assert all(set(t) == TICKET_KEYS for t in listed)
    assert [t["mask"] for t in json_in_process(config_path, "tickets", "--status", "closed")] == [masks[Status.CLOSED]]
    assert len(json_in_process(config_path, "tickets", "--status", "all")) == len(Status)
    both = json_in_process(config_path, "tickets", "--status", "closed", "--status", "deleted")
    assert {t["status"] for t in both} == {"closed", "deleted"}


@pytest.mark.sqlite_only
def test_tickets_plain_output_when_piped(database: Database, settings: Settings, config_path: Path) -> None:
    mask = file_mail(database, settings, subject="A rather long subject that a narrow table would cut short")
    result = run_cli(config_path, "tickets")
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines[0].split("\t") == ["mask", "subject", "status", "priority", "owner", "messages", "created",
                                          "updated"]
    assert lines[1].split("\t")[:6] == [mask, "A rather long subject that a narrow table would cut short",
                                         "open", "normal", "-", "1"]


def test_show_json_has_fields_and_conversation(database: Database, settings: Settings, config_path: Path) -> None:
    first = make_mail(sender="Alice <alice@customer.test>", cc="bob@customer.test",
                      attachments=[("log.txt", "text/plain", b"line 1\n")])
    deliver(database, settings, first.as_bytes(), Envelope("deliver", "", ()))
    mask = json_in_process(config_path, "tickets")[0]["mask"]
    file_mail(database, settings, sender="bob@customer.test", subject=f"Re: [{mask.lower()}]", body="me too")
    shown = json_in_process(config_path, "show", mask.lower())
    assert set(shown) == TICKET_KEYS | {"messages"}
    assert shown["message_count"] == 2 and shown["recipients"] == ["alice@customer.test", "bob@customer.test"]
    one, two = shown["messages"]
    assert MESSAGE_KEYS <= set(one)
    assert one["from"] == "alice@customer.test" and one["cc"] == ["bob@customer.test"]
    assert one["to"] == ["support@example.com"] and one["message_id"] == first["Message-ID"]
    assert one["attachments"][0]["filename"] == "log.txt" and one["attachments"][0]["size"] == 7
    assert two["from"] == "bob@customer.test" and two["text"].strip() == "me too"
    # a mask and a From line prove nothing: Bob's mail is kept, flagged, and changes nothing
    assert two["unverified_sender"] and not one["unverified_sender"]
    assert shown["last_wrote"] == "alice@customer.test" and shown["last_action"] == "new"


@pytest.mark.sqlite_only
def test_show_plain_prints_header_and_messages(database: Database, settings: Settings, config_path: Path) -> None:
    mask = file_mail(database, settings, body="The printer is on fire.")
    result = run_in_process(config_path, "show", mask)
    out = result.stdout.decode()
    assert result.returncode == 0 and mask in out and "The printer is on fire." in out and "recipients" in out


@pytest.mark.sqlite_only
def test_unknown_mask_is_one_line_and_exit_1(database: Database, config_path: Path) -> None:
    result = run_in_process(config_path, "show", "ZZZ-00000-000")
    assert result.returncode == 1
    assert result.stderr.decode().strip().splitlines() == ["postdesk: no ticket with mask ZZZ-00000-000"]


@pytest.mark.sqlite_only
def test_bad_usage_exits_2(database: Database, config_path: Path) -> None:
    result = run_in_process(config_path, "tickets", "--status", "sleeping")
    assert result.returncode == 2 and b"Traceback" not in result.stderr
