"""`postdesk reply`, `postdesk new` and `postdesk outbox` on a real database, run in process (a reply and a refusal
also as whole processes)."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from core.db import Database
from core.inbound import Envelope
from core.settings import Settings
from mailgate.deliver import deliver
from mailgate.outbox_sender import OutboxSender
from testkit import Sink, json_in_process, make_mail, run_cli, run_in_process, text_of

WORKER = "jane@corp.test"
ALICE = "alice@customer.test"
BOB = "bob@customer.test"


def ok(config: Path, *args: str, stdin: bytes = b"",
       run: Callable[..., CompletedProcess[bytes]] = run_in_process) -> str:
    result = run(config, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def customer_ticket(database: Database, settings: Settings, config: Path) -> tuple[str, EmailMessage]:
    """Jane is a worker of Support; Alice wrote in, copying Bob. Returns the mask and Alice's mail."""
    ok(config, "worker", "add", WORKER, "--name", "Jane Doe", "--group", "Support")
    first = make_mail(sender=f"Alice Smith <{ALICE}>", cc=BOB, subject="Printer on fire")
    deliver(database, settings, first.as_bytes(), Envelope("deliver", ALICE, ("support@example.com",)))
    (ticket,) = json_in_process(config, "tickets")
    return ticket["mask"], first


def queued(config: Path, purpose: str) -> list[dict]:
    return [item for item in json_in_process(config, "outbox") if item["purpose"] == purpose]


def send_outbox(database: Database, settings: Settings) -> None:
    OutboxSender(database, settings.relay, settings.smtp.hostname).send_due()


def relayed_by_jane(sink: Sink, to: str = ALICE) -> tuple[EmailMessage, bytes]:
    """Jane's reply as one recipient got it: each has a copy of their own (their own reply token)."""
    (found,) = [(mail, raw) for mail, (_, rcpts, raw) in zip(sink.mails(), sink.received)
                if mail["From"].addresses[0].display_name == "Jane Doe" and rcpts == [to]]
    return found


def recipients_of(items: list[dict]) -> list[str]:
    return sorted(r for item in items for r in item["recipients"])


def test_reply_relays_to_every_recipient_as_the_group(database: Database, settings: Settings, config_path: Path,
                                                     sink: Sink, tmp_path: Path) -> None:
    mask, first = customer_ticket(database, settings, config_path)
    text = tmp_path / "answer.txt"
    text.write_text(f"Hi Alice, unplug it now.\n\n-- \nJane Doe, {WORKER}\n")
    log = tmp_path / "steps.txt"
    log.write_bytes(b"1. unplug\n")
    out = ok(config_path, "reply", mask.lower(), "--as", WORKER, "--file", str(text), "--attach", str(log),
             run=run_cli)  # once as a whole process
    assert out.strip() == f"{mask}: reply filed, ticket waiting"

    items = queued(config_path, "reply")
    assert {i["state"] for i in items} == {"queued"} and {i["ticket"] for i in items} == {mask}
    assert [i["recipients"] for i in items] == [[ALICE], [BOB]], "a copy each"
    send_outbox(database, settings)
    relayed, raw = relayed_by_jane(sink)
    assert WORKER.encode() not in raw.lower() and b"corp.test" not in raw.lower()
    assert str(relayed["From"]) == "Jane Doe <support@example.com>"
    # her copy refers to her own mail and to the helpdesk's mail to her (the acknowledgement), to no one else's
    assert relayed["References"].split()[0] == first["Message-ID"] and mask in relayed["Subject"]
    assert relayed["In-Reply-To"].endswith(".pd@postdesk.test>")
    assert {a.addr_spec for a in relayed["To"].addresses} == {ALICE, BOB}
    body, attachment = relayed.iter_parts()
    assert "Hi Alice, unplug it now." in text_of(body)
    assert attachment.get_filename() == "steps.txt" and attachment.get_content_type() == "text/plain"
    assert [i["id"] for i in json_in_process(config_path, "outbox", "--state", "sent")] == [
        i["id"] for i in json_in_process(config_path, "outbox", "--state", "all")]

    shown = json_in_process(config_path, "show", mask)
    assert shown["status"] == "waiting" and shown["last_action"] == "worker_replied"
    assert shown["last_wrote"] == WORKER and shown["messages"][-1]["text"] == "Hi Alice, unplug it now."
    assert shown["messages"][-1]["attachments"][0]["filename"] == "steps.txt"


@pytest.mark.sqlite_only
def test_reply_from_stdin_with_worker_from_environment(database: Database, settings: Settings, config_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    mask, _ = customer_ticket(database, settings, config_path)
    monkeypatch.setenv("POSTDESK_WORKER", WORKER)
    ok(config_path, "reply", mask, stdin=b"#close\n\nFixed, closing.\n")
    shown = json_in_process(config_path, "show", mask)
    assert shown["status"] == "closed" and shown["messages"][-1]["text"] == "Fixed, closing."
    assert recipients_of(queued(config_path, "reply")) == [ALICE, BOB]


def test_comment_relays_nothing(database: Database, settings: Settings, config_path: Path) -> None:
    mask, _ = customer_ticket(database, settings, config_path)
    out = ok(config_path, "reply", mask, "--as", WORKER, stdin=b"#comment\nCustomer is a VIP.\n")
    assert out.strip() == f"{mask}: comment filed, ticket open"
    assert queued(config_path, "reply") == []
    shown = json_in_process(config_path, "show", mask)
    assert shown["status"] == "open" and shown["last_action"] == "new"
    assert shown["messages"][-1]["text"] == "Customer is a VIP."


def test_new_opens_a_ticket_and_sends_the_first_message(database: Database, settings: Settings,
                                                        config_path: Path, sink: Sink) -> None:
    ok(config_path, "group", "add", "Billing", "--address", "billing@example.com")
    ok(config_path, "worker", "add", WORKER, "--name", "Jane Doe", "--group", "Billing")
    mask = ok(config_path, "new", "--to", f"Alice Smith <{ALICE}>", "--to", BOB, "--cc", "Carol@Customer.test",
              "--subject", "Your refund", "--priority", "high", "--group", "billing", "--as", WORKER,
              stdin=b"Hello, your refund is on its way.\n").strip()
    shown = json_in_process(config_path, "show", mask)
    assert shown["recipients"] == [ALICE, BOB, "carol@customer.test"] and shown["subject"] == "Your refund"
    assert (shown["group"], shown["bucket"], shown["priority"]) == ("Billing", "Inbox", "high")
    assert shown["first_wrote"] == WORKER and shown["status"] == "waiting"
    assert shown["last_action"] == "worker_replied" and shown["message_count"] == 1

    items = queued(config_path, "reply")
    assert {i["ticket"] for i in items} == {mask} and recipients_of(items) == sorted(shown["recipients"])
    send_outbox(database, settings)
    relayed, raw = relayed_by_jane(sink)
    assert str(relayed["From"]) == "Jane Doe <billing@example.com>" and WORKER.encode() not in raw.lower()
    assert mask in relayed["Subject"] and "your refund is on its way" in text_of(relayed)

    answer = make_mail(sender=ALICE, subject="Re: thanks", in_reply_to=str(relayed["Message-ID"]), body="Got it.")
    deliver(database, settings, answer.as_bytes(), Envelope("deliver", "", ("billing@example.com",)))
    shown = json_in_process(config_path, "show", mask)
    assert shown["message_count"] == 2 and shown["status"] == "open"


def test_outbox_state_filter(database: Database, settings: Settings, config_path: Path, sink: Sink) -> None:
    customer_ticket(database, settings, config_path)
    pending = json_in_process(config_path, "outbox")
    assert {i["purpose"] for i in pending} == {"notification", "auto_reply"}
    assert {i["state"] for i in pending} == {"queued"} and all(i["attempts"] == 0 for i in pending)
    assert json_in_process(config_path, "outbox", "--state", "sent") == []

    sink.stop()  # the smarthost is down: every mail waits for a retry
    send_outbox(database, settings)
    retrying = json_in_process(config_path, "outbox", "--state", "queued")
    assert [i["id"] for i in retrying] == [i["id"] for i in pending]
    assert all(i["attempts"] == 1 and i["last_error"] and i["next_attempt"] for i in retrying)
    assert json_in_process(config_path, "outbox", "--state", "failed", "--state", "sending") == []

    lines = ok(config_path, "outbox", "--state", "all").splitlines()
    assert lines[0].split("\t")[:5] == ["id", "state", "purpose", "ticket", "recipients"]
    assert len(lines) == 1 + len(pending)


@pytest.mark.sqlite_only
def test_errors_are_one_line_and_file_nothing(database: Database, settings: Settings, config_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    mask, _ = customer_ticket(database, settings, config_path)
    before = json_in_process(config_path, "outbox", "--state", "all")
    new = ("new", "--subject", "Hello", "--as", WORKER)
    cases = [
        (("reply", "XER-00000-000", "--as", WORKER), b"hi", "postdesk: no ticket with mask XER-00000-000"),
        (("reply", mask, "--as", "ghost@corp.test"), b"hi", "postdesk: no worker with address ghost@corp.test"),
        (("reply", mask, "--as", WORKER), b" \n", "postdesk: no text: give --file FILE or pipe the text on stdin"),
        (("reply", mask, "--as", WORKER), b"#frobnicate\nhi", "postdesk: nothing filed: unknown command: #frobnicate"),
        (("reply", mask, "--as", WORKER), b"#owner bob@corp.test\nhi",
         "postdesk: nothing filed: #owner: bob@corp.test is not a worker"),
        ((*new, "--to", "not-an-address"), b"hi", "postdesk: not a mail address: 'not-an-address'"),
        ((*new, "--to", "Help@other.test"), b"hi", "postdesk: help@other.test is a helpdesk address, not a recipient"),
        ((*new, "--to", BOB, "--cc", "anyone@example.com"), b"hi",
         "postdesk: anyone@example.com is a helpdesk address, not a recipient"),
        ((*new, "--to", WORKER), b"hi", f"postdesk: {WORKER} is a worker's address; workers are never recipients"),
        ((*new, "--to", BOB, "--priority", "asap"), b"hi",
         "postdesk: unknown priority 'asap' (use one of low, normal, high, urgent)"),
        ((*new, "--to", BOB, "--group", "Nope"), b"hi", "postdesk: no group named 'Nope'"),
    ]
    for number, (args, stdin, line) in enumerate(cases):
        run = run_cli if number == 0 else run_in_process  # the first as a whole process too
        result = run(config_path, *args, stdin=stdin)
        assert result.returncode == 1 and result.stderr.decode().strip().splitlines() == [line], args
    monkeypatch.delenv("POSTDESK_WORKER", raising=False)
    assert run_in_process(config_path, "reply", mask, stdin=b"hi").returncode == 2  # --as is required
    assert run_in_process(config_path, "new", "--subject", "x", "--as", WORKER, stdin=b"hi").returncode == 2  # no --to
    assert run_in_process(config_path, "outbox", "--state", "lost").returncode == 2
    assert json_in_process(config_path, "outbox", "--state", "all") == before
    assert [t["mask"] for t in json_in_process(config_path, "tickets", "--status", "all")] == [mask]
    assert json_in_process(config_path, "show", mask)["message_count"] == 1
