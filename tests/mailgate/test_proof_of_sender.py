"""Attacks over SMTP on a running daemon, by someone who knows a worker's address and a customer's mask.

Each must change, relay and leak nothing; a real worker's and customer's replies keep working.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from testkit import Daemon, Sink, assert_no_worker_address_leaked, make_mail, text_of, wait_for, write_config
from workers.cli import main

JANE, BOB = "jane@corp.test", "bob@corp.test"
ALICE, MALLORY = "alice@customer.test", "mallory@evil.test"
SUPPORT = "support@example.com"


def cli(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), *args], prog_name="postdesk")
    assert result.exit_code == 0, (result.output, result.exc_info)
    return result.stdout


def shown(config: Path, mask: str) -> dict[str, Any]:
    return json.loads(cli(config, "show", mask, "--history", "--json"))


def all_tickets(config: Path) -> list[dict[str, Any]]:
    return json.loads(cli(config, "tickets", "--status", "all", "--json"))


def mails_to(sink: Sink, address: str, count: int) -> list[EmailMessage]:
    def enough() -> list[EmailMessage] | None:
        found = sink.to(address)
        return found if len(found) >= count else None
    enough.__name__ = f"{count} mails to {address}"
    return wait_for(enough)  # type: ignore[return-value]


def settle(daemon: Daemon, seconds: float = 1.5) -> None:
    """Let the runner and the outbox finish what they have (nothing to wait *for*: we check for absence)."""
    def spool_empty() -> bool:
        return not json.loads(cli(daemon.config, "outbox", "--json"))
    wait_for(spool_empty)
    time.sleep(seconds)


@pytest.fixture
def desk(tmp_path: Path, db_url: str, sink: Sink) -> Iterator[Daemon]:
    """A daemon with Jane and Bob in Support (close notices on), small limits to see them bite."""
    config = write_config(tmp_path, db_url, relay_port=sink.port,
                          helpdesk={"max_new_recipients": 3, "max_mails_per_hour": 6})
    running = Daemon(config, tmp_path / "daemon.log").start()
    cli(config, "worker", "add", JANE, "--name", "Jane Doe", "--group", "Support")
    cli(config, "worker", "add", BOB, "--name", "Bob Roe", "--group", "Support")
    cli(config, "group", "edit", "Support", "--close-notice")
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop()
    assert_no_worker_address_leaked(running.settings.database.url)


def alice_opens(desk: Daemon, sink: Sink) -> tuple[str, EmailMessage, EmailMessage, EmailMessage]:
    """Alice writes in: the ticket's mask, her first mail, her acknowledgement, Jane's notification."""
    first = make_mail(sender=f"Alice <{ALICE}>", subject="Order 1003 never came", body="Where is my parcel?")
    desk.send(first.as_bytes(), sender=ALICE)
    (ack,) = mails_to(sink, ALICE, 1)
    (note,) = mails_to(sink, JANE, 1)
    mails_to(sink, BOB, 1)
    (ticket,) = all_tickets(desk.config)
    return ticket["mask"], first, ack, note


def forged(subject: str, body: str, **headers: str) -> bytes:
    mail = make_mail(sender=headers.pop("sender", f"Jane Doe <{JANE}>"), subject=subject, body=body)
    for name, value in headers.items():
        del mail[name.replace("_", "-")]
        if value:
            mail[name.replace("_", "-")] = value
    return mail.as_bytes()


def test_a_forged_worker_changes_nothing_and_reaches_no_customer(desk: Daemon, sink: Sink) -> None:
    mask, first, _, _ = alice_opens(desk, sink)
    phishing = ("#owner bob@corp.test\n#priority urgent\nPlease confirm your card at http://evil.test/pay"
                "\x1b[1A\x1b[2K\x1b]52;c;cm0gLXJmIH4=\x07")
    desk.send(forged(f"Re: [{mask}] Order 1003", phishing), sender=MALLORY)
    desk.send(forged(f"Re: [{mask}]", "#spam", In_Reply_To=first["Message-ID"]), sender=MALLORY)
    desk.send(forged(f"Re: [{mask}]", "#close", sender="", From="", Reply_To=f"Jane <{JANE}>"), sender=MALLORY)
    settle(desk)

    ticket = shown(desk.config, mask)
    assert (ticket["status"], ticket["priority"], ticket["owner"]) == ("open", "normal", None)
    assert ticket["spam_training"] == "none"
    assert not any(e["actor"] == JANE for e in ticket["history"])
    to_alice = b"".join(raw for _, rcpts, raw in sink.received if ALICE in rcpts)
    assert b"evil.test/pay" not in to_alice and len(sink.to(ALICE)) == 1, "only her acknowledgement"
    assert ticket["message_count"] == 1, "nothing joins her ticket without proof"
    for other in all_tickets(desk.config):
        printed = cli(desk.config, "show", other["mask"])
        assert "\x1b" not in printed and "\x07" not in printed, "the terminal obeys no stranger"
    others = [t for t in all_tickets(desk.config) if t["mask"] != mask]
    assert len(others) == 3, "a mask or an id without proof joins nothing: each forgery opened a ticket of its own"
    assert {t["status"] for t in others} == {"open"}
    for other in others:  # kept and shown flagged: a worker's address that nothing proves
        assert all(m["unverified_sender"] for m in shown(desk.config, other["mask"])["messages"])


@pytest.mark.sqlite_only
def test_real_worker_answers_by_message_id_or_by_reply_address_alone(desk: Daemon, sink: Sink) -> None:
    mask, _, _, note = alice_opens(desk, sink)
    by_id = make_mail(sender=f"Jane Doe <{JANE}>", to=str(note["Reply-To"]), subject="Re: order",
                      in_reply_to=note["Message-ID"], body="#priority high\nIt left our warehouse today.")
    desk.send(by_id.as_bytes(), sender=JANE)
    mails_to(sink, ALICE, 2)
    # a client that keeps no In-Reply-To and a subject without the mask: the reply address alone proves Jane
    by_token = make_mail(sender=f"Jane Doe <{JANE}>", to=str(note["Reply-To"]), subject="tracking",
                         body="#owner me\nTracking number is 42.")
    desk.send(by_token.as_bytes(), sender=JANE)
    relayed = mails_to(sink, ALICE, 3)
    ticket = shown(desk.config, mask)
    assert (ticket["priority"], ticket["owner"], ticket["status"]) == ("high", JANE, "waiting")
    assert "Tracking number is 42." in text_of(relayed[-1])
    token = relayed[-1]["Reply-To"].addresses[0].addr_spec
    assert token.startswith("support+") and token != str(note["Reply-To"].addresses[0].addr_spec)
    # Alice answers through her own reply address: proven, reopens
    answer = make_mail(sender=f"Alice <{ALICE}>", to=token, subject="thanks", body="Got it.")
    desk.send(answer.as_bytes(), to=(token,), sender=ALICE)
    wait_for(lambda: shown(desk.config, mask)["status"] == "open")


@pytest.mark.sqlite_only
def test_only_a_proven_recipient_brings_in_others_and_at_most_the_limit(desk: Daemon, sink: Sink) -> None:
    mask, _, ack, _ = alice_opens(desk, sink)
    claim = make_mail(sender=f"Alice <{ALICE}>", cc=MALLORY, subject=f"Re: [{mask}] more", body="see Cc")
    desk.send(claim.as_bytes(), sender=MALLORY)
    many = ", ".join(f"friend{n}@customer.test" for n in range(10))
    proven = make_mail(sender=f"Alice <{ALICE}>", cc=many, subject="Re: order", in_reply_to=ack["Message-ID"],
                       body="My colleagues should read along.")
    desk.send(proven.as_bytes(), sender=ALICE)
    settle(desk)
    ticket = shown(desk.config, mask)
    assert MALLORY not in ticket["recipients"]
    assert len(ticket["recipients"]) == 1 + 3, "Alice and max_new_recipients of her ten"
    assert any(e["action"] == "recipients_limited" for e in ticket["history"])
    cli(desk.config, "close", mask)
    settle(desk)
    assert not sink.to(MALLORY), "Mallory gets neither replies nor the close notice"


@pytest.mark.sqlite_only
def test_a_planted_reference_captures_no_later_mail(desk: Daemon, sink: Sink) -> None:
    planted = make_mail(sender=f"Mallory <{MALLORY}>", subject="order question",
                        references="<order-1003@shop.test>", body="hello")
    desk.send(planted.as_bytes(), sender=MALLORY)
    mails_to(sink, MALLORY, 1)
    real = make_mail(sender="Shop <orders@shop.test>", to=f"{SUPPORT}, {ALICE}", subject="Order 1003 shipped",
                     message_id="<order-1003@shop.test>", body="Your order has shipped.")
    desk.send(real.as_bytes(), sender="bounces@shop.test")
    (ack,) = mails_to(sink, "bounces@shop.test", 1)
    tickets = all_tickets(desk.config)
    assert len(tickets) == 2
    real_ticket = next(t for t in tickets if t["subject"] == "Order 1003 shipped")
    assert real_ticket["mask"] in ack["Subject"]
    messages = shown(desk.config, real_ticket["mask"])["messages"]
    assert [m["unverified_sender"] for m in messages] == [False]
    assert len(mails_to(sink, JANE, 2)) == 2, "workers hear of both"


@pytest.mark.sqlite_only
def test_automatic_mail_of_a_worker_is_never_relayed(desk: Daemon, sink: Sink) -> None:
    mask, _, _, note = alice_opens(desk, sink)
    away = make_mail(sender=f"Jane Doe <{JANE}>", to=str(note["Reply-To"]), subject="Out of office",
                     in_reply_to=note["Message-ID"], body="I am away until Monday.")
    away["Auto-Submitted"] = "auto-replied"
    desk.send(away.as_bytes(), sender=JANE)
    settle(desk)
    ticket = shown(desk.config, mask)
    assert len(sink.to(ALICE)) == 1 and ticket["status"] == "open"
    assert any(e["action"] == "automated_not_relayed" for e in ticket["history"])


@pytest.mark.sqlite_only
def test_acknowledgement_goes_to_the_return_path_short_and_alike_for_any_mask(desk: Daemon, sink: Sink) -> None:
    mask, _, _, _ = alice_opens(desk, sink)
    advert = "BUY CHEAP PILLS AT http://ads.test " * 250
    victim = make_mail(sender=f'"{advert}" <victim@third.test>', subject=f"[{mask}] {advert}", body="x")
    desk.send(victim.as_bytes(), sender="bounce@return.test")
    unknown = make_mail(sender="someone@third.test", subject="[ABC-12345-678] hello", body="x")
    desk.send(unknown.as_bytes(), sender="probe@return.test")
    (first,) = mails_to(sink, "bounce@return.test", 1)
    (second,) = mails_to(sink, "probe@return.test", 1)
    settle(desk)
    assert not sink.to("victim@third.test") and not sink.to("someone@third.test")
    quoted = str(first["Subject"]) + text_of(first)
    assert quoted.count("PILLS") <= 2 and "victim" not in quoted, "a short subject, and no display name"
    opened = {t["mask"] for t in all_tickets(desk.config)} - {mask}
    assert len(opened) == 2, "a mask quoted without proof opened a ticket of its own, as an unknown one does"
    assert any(m in str(first["Subject"]) for m in opened) and any(m in str(second["Subject"]) for m in opened)
    shape = [(str(m["From"]), m["Auto-Submitted"], text_of(m).count("\n")) for m in (first, second)]
    assert shape[0] == shape[1]


@pytest.mark.sqlite_only
def test_null_return_path_gets_no_acknowledgement(desk: Daemon, sink: Sink) -> None:
    mail = make_mail(sender=f"Alice <{ALICE}>", subject="hello")
    with desk.smtp() as client:
        client.sendmail("", [SUPPORT], mail.as_bytes())
    wait_for(lambda: len(all_tickets(desk.config)) == 1)
    settle(desk)
    assert not sink.to(ALICE)


@pytest.mark.sqlite_only
def test_a_worker_signed_by_dkim_is_proven_without_answering_anything(tmp_path: Path, db_url: str,
                                                                       sink: Sink) -> None:
    import base64
    import subprocess

    import dkim

    private = subprocess.run(["openssl", "genrsa", "-traditional", "2048"], capture_output=True, check=True).stdout
    public = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=private,
                            capture_output=True, check=True).stdout
    keys = tmp_path / "dkim-keys.txt"
    keys.write_text(f"sel._domainkey.corp.test v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}\n")
    config = write_config(tmp_path, db_url, relay_port=sink.port, helpdesk={"dkim_dns_file": str(keys)})
    desk = Daemon(config, tmp_path / "daemon.log").start()
    try:
        cli(config, "worker", "add", JANE, "--name", "Jane Doe", "--group", "Support")
        mask, _, _, _ = alice_opens_without_bob(desk, sink)
        unsigned = make_mail(sender=f"Jane Doe <{JANE}>", subject=f"[{mask}] your order", body="#priority low\nHm.")
        desk.send(unsigned.as_bytes(), sender=JANE)
        fresh = make_mail(sender=f"Jane Doe <{JANE}>", subject=f"[{mask}] your order", body="#priority urgent\nOn it.")
        desk.send(dkim.sign(fresh.as_bytes(), b"sel", b"corp.test", private) + fresh.as_bytes(), sender=JANE)
        relayed = mails_to(sink, ALICE, 2)
        assert "On it." in text_of(relayed[-1])
        ticket = shown(desk.config, mask)
        assert ticket["priority"] == "urgent", "the unsigned copy (#priority low) opened its own ticket instead"
        assert len(all_tickets(config)) == 2
    finally:
        desk.stop()


def alice_opens_without_bob(desk: Daemon, sink: Sink) -> tuple[str, EmailMessage, EmailMessage, EmailMessage]:
    first = make_mail(sender=f"Alice <{ALICE}>", subject="Order 1003 never came", body="Where is my parcel?")
    desk.send(first.as_bytes(), sender=ALICE)
    (ack,) = mails_to(sink, ALICE, 1)
    (note,) = mails_to(sink, JANE, 1)
    (ticket,) = all_tickets(desk.config)
    return ticket["mask"], first, ack, note


class Responder:
    """Stands in for the smarthost and, behind it, two careless auto-responders (Alice's and Jane's).

    Each answers every mail it gets at once, to its Reply-To, threaded, and marks its answers as
    nothing automatic: the worst kind, the one the hourly cap is for.
    """

    def __init__(self, sink: Sink, daemon: Daemon) -> None:
        self.sink, self.daemon, self.answered = sink, daemon, 0

    def answer_new(self) -> None:
        for _, rcpts, raw in self.sink.received[self.answered:]:
            self.answered += 1
            from email import message_from_bytes
            from email.policy import default

            mail = message_from_bytes(raw, policy=default)
            me = ALICE if ALICE in rcpts else JANE if JANE in rcpts else None
            if me is None or mail["Reply-To"] is None:
                continue
            answer = make_mail(sender=me, to=str(mail["Reply-To"]), subject=f"Re: {mail['Subject']}",
                               in_reply_to=str(mail["Message-ID"]), body="I am away; I will read your mail later.")
            self.daemon.send(answer.as_bytes(), to=(mail["Reply-To"].addresses[0].addr_spec,), sender=me)


@pytest.mark.sqlite_only
def test_two_careless_auto_responders_stop_at_the_hourly_cap(desk: Daemon, sink: Sink) -> None:
    mask, _, _, _ = alice_opens(desk, sink)
    responder = Responder(sink, desk)
    quiet_since, seen = time.monotonic(), 0
    deadline = time.monotonic() + 90
    while time.monotonic() - quiet_since < 4:
        responder.answer_new()
        if len(sink.received) != seen:
            seen, quiet_since = len(sink.received), time.monotonic()
        assert time.monotonic() < deadline, "the loop did not stop"
        time.sleep(0.1)
    cap = 6
    assert len(sink.to(ALICE)) <= cap
    held = [m for m in sink.to(JANE) if str(m["Subject"]).count("Mail held")]
    assert len(sink.to(JANE)) <= cap + len(held) and 1 <= len(held) <= 3, "an alarm per held address at most"
    history = shown(desk.config, mask)["history"]
    assert {e["detail"] for e in history if e["action"] == "mail_cap"} <= {ALICE, JANE, BOB}
    assert any(e["action"] == "mail_cap" for e in history)


@pytest.mark.sqlite_only
def test_no_form_of_a_worker_address_reaches_a_customer(desk: Daemon, sink: Sink) -> None:
    cli(desk.config, "worker", "add", "kai@bücher.test", "--name", "Kai", "--group", "Support")
    mask, first, _, note = alice_opens(desk, sink)
    card = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jane Doe\r\nEMAIL:jane@corp.test\r\nEND:VCARD\r\n"
    answer = make_mail(sender=f"Jane Doe <{JANE}>", to=str(note["Reply-To"]), subject="Re: order",
                       in_reply_to=note["Message-ID"], references=f"{first['Message-ID']} <x1@corp.test>",
                       body="Write to mailto:jane%40corp.test or KAI@BÜCHER.TEST or jane&#64;corp.test.\n"
                            "Best, Jane",
                       attachments=[("notes-from-jane@corp.test.pdf", "application/pdf", b"%PDF-1.4 harmless"),
                                    ("jane.vcf", "text/vcard", card),
                                    ("label.txt", "text/plain", b"ship to Kai <kai@xn--bcher-kva.test>")])
    desk.send(answer.as_bytes(), sender=JANE)
    relayed = mails_to(sink, ALICE, 2)[-1]
    names = [part.get_filename() for part in relayed.iter_attachments()]
    assert names == ["notes-from-address-removed.pdf"]
    told = [m for m in mails_to(sink, JANE, 2) if "Relayed with changes" in str(m["Subject"])]
    assert told and "jane.vcf" in text_of(told[0]) and "label.txt" in text_of(told[0])
    cli(desk.config, "close", mask)
    (notice,) = [m for m in mails_to(sink, ALICE, 3) if "Closed" in str(m["Subject"])]
    assert "Where is my parcel?" in text_of(notice) and "Jane" in text_of(notice)
    settle(desk)
    from core.privacy import PrivateAddresses

    private = PrivateAddresses.of([JANE, BOB, "kai@xn--bcher-kva.test"])
    for _, rcpts, raw in sink.received:
        if not {JANE, BOB, "kai@xn--bcher-kva.test"} & set(rcpts):
            assert not private.found_in(raw), rcpts
            assert b"corp.test" not in raw and b"xn--bcher" not in raw and "bücher".encode() not in raw
