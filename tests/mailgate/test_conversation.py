"""Conversations by email, end to end: gateway in, outbox out to a real SMTP sink acting as smarthost."""

from __future__ import annotations

import pytest

from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

from sqlalchemy import select

from core.db import open_database
from core.models import AddressRow, Message, MessageKind
from testkit import Daemon, Sink, json_in_process, make_mail, run_in_process, text_of, wait_for

WORKER = "jane@corp.test"
CUSTOMER = "alice@customer.test"


def add_worker(config: Path, email: str = WORKER, name: str = "Jane Doe") -> None:
    result = run_in_process(config, "worker", "add", email, "--name", name, "--group", "Support")
    assert result.returncode == 0, result.stderr


def arrived(sink: Sink, address: str, count: int) -> list[EmailMessage]:
    def enough() -> list[EmailMessage] | None:
        mails = sink.to(address)
        return mails if len(mails) >= count else None
    enough.__name__ = f"{count} mails to {address}"
    return wait_for(enough)  # type: ignore[return-value]


def worker_answer(notification: EmailMessage, body: str, subject: str = "Re: your printer") -> EmailMessage:
    """What Jane's mail client sends when she hits reply: threaded by headers, quoting, signed."""
    answer = make_mail(sender=f"Jane Doe <{WORKER}>", to=str(notification["Reply-To"]), subject=subject,
                       in_reply_to=str(notification["Message-ID"]), references=str(notification["Message-ID"]),
                       body=f"{body}\n\n-- \nJane Doe, Corp Support, {WORKER}\n\n"
                            f"On Mon, 23 Nov 2026, {notification['From']} wrote:\n> Help, please.\n")
    return answer


def ticket(daemon: Daemon) -> dict:
    (only,) = json_in_process(daemon.config, "tickets", "--status", "all")
    return json_in_process(daemon.config, "show", only["mask"])


def test_round_trip_threaded_by_headers_alone(daemon: Daemon, sink: Sink) -> None:
    add_worker(daemon.config)
    first = make_mail(sender=f"Alice Smith <{CUSTOMER}>", subject="Printer on fire")
    daemon.send(first.as_bytes(), sender=CUSTOMER)

    (ack,) = arrived(sink, CUSTOMER, 1)
    (note,) = arrived(sink, WORKER, 1)
    mask = ticket(daemon)["mask"]
    assert ack["Auto-Submitted"] == "auto-replied" and mask in ack["Subject"]
    assert note["From"].addresses[0].addr_spec == "support@example.com"
    assert note["From"].addresses[0].display_name == "Alice Smith via Support"
    reply_to = note["Reply-To"].addresses[0]
    assert reply_to.display_name == "Support" and reply_to.addr_spec.startswith(f"support+{mask.lower()}.")
    assert mask in note["Subject"] and note["In-Reply-To"] == first["Message-ID"]

    daemon.send(worker_answer(note, "Hi Alice, unplug it now.").as_bytes(), sender=WORKER)
    relayed = arrived(sink, CUSTOMER, 2)[-1]
    raw = sink.received[-1][2]
    assert WORKER.encode() not in raw.lower() and b"corp.test" not in raw.lower()
    assert str(relayed["From"]) == "Jane Doe <support@example.com>"
    assert relayed["In-Reply-To"] == ack["Message-ID"] and mask in relayed["Subject"]
    assert relayed["References"].split() == [first["Message-ID"], ack["Message-ID"]], "her own ids and ours only"
    assert "Hi Alice, unplug it now." in text_of(relayed)
    shown = ticket(daemon)
    assert shown["status"] == "waiting" and shown["last_action"] == "worker_replied"

    reply = make_mail(sender=f"Alice Smith <{CUSTOMER}>", subject="Re: thanks",
                      in_reply_to=str(relayed["Message-ID"]), body="It worked.")
    daemon.send(reply.as_bytes(), sender=CUSTOMER)
    arrived(sink, WORKER, 2)
    shown = ticket(daemon)
    assert shown["message_count"] == 3 and shown["status"] == "open"
    assert shown["last_action"] == "recipient_replied"
    assert len(sink.to(CUSTOMER)) == 2, "no second acknowledgement for a follow-up"


@pytest.mark.sqlite_only
def test_worker_commands(daemon: Daemon, sink: Sink) -> None:
    add_worker(daemon.config)
    daemon.send(make_mail(sender=CUSTOMER).as_bytes(), sender=CUSTOMER)
    (note,) = arrived(sink, WORKER, 1)
    arrived(sink, CUSTOMER, 1)

    daemon.send(worker_answer(note, "#comment\nShe sounds upset, handle with care.").as_bytes(), sender=WORKER)
    wait_for(lambda: ticket(daemon)["message_count"] == 2)
    daemon.send(worker_answer(note, "#frobnicate\nHello").as_bytes(), sender=WORKER)
    (error,) = arrived(sink, WORKER, 2)[1:]
    assert "unknown command: #frobnicate" in text_of(error)
    daemon.send(worker_answer(note, "#priority high\n#owner me\n#close\nAll done, closing.").as_bytes(),
                sender=WORKER)
    wait_for(lambda: ticket(daemon)["status"] == "closed")
    shown = ticket(daemon)
    assert shown["priority"] == "high" and shown["owner"] == WORKER
    customer_mails = arrived(sink, CUSTOMER, 2)
    assert len(customer_mails) == 2, "only the acknowledgement and the closing answer reach the customer"
    assert "All done, closing." in text_of(customer_mails[1])
    assert "#close" not in text_of(customer_mails[1])


@pytest.mark.sqlite_only
def test_smarthost_down_then_up_loses_and_doubles_nothing(daemon: Daemon, sink: Sink) -> None:
    add_worker(daemon.config)
    sink.stop()
    for n in range(3):
        daemon.send(make_mail(sender=f"c{n}@customer.test", subject=f"case {n}").as_bytes(), sender=f"c{n}@customer.test")
    wait_for(lambda: len([i for i in json_in_process(daemon.config, "outbox")
                          if i["attempts"] >= 1]) == 6)
    assert daemon.stop() == 0  # a restart while the smarthost is down keeps the queue
    sink.start()
    daemon.start()
    wait_for(lambda: len(sink.received) >= 6)
    wait_for(lambda: json_in_process(daemon.config, "outbox") == [])
    ids = [str(m["Message-ID"]) for m in sink.mails()]
    assert len(ids) == 6 and len(set(ids)) == 6
    sent = json_in_process(daemon.config, "outbox", "--state", "sent")
    assert sorted(i["message_id"] for i in sent) == sorted(ids)


def test_a_second_helpdesk_auto_replying_stops_at_once(tmp_path: Path) -> None:
    """Two postdesk instances, each the other's smarthost: acknowledgements must not ping-pong."""
    from testkit import free_port, write_config

    port_a, port_b = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    url_a, url_b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    a = Daemon(write_config(tmp_path / "a", url_a, port_a, relay_port=port_b, domains=("a.test",),
                            default_address="support@a.test"), tmp_path / "a.log").start()
    b = Daemon(write_config(tmp_path / "b", url_b, port_b, relay_port=port_a, domains=("b.test",),
                            default_address="support@b.test"), tmp_path / "b.log").start()
    try:
        # B's helpdesk writes to A's (say, a ticket forwarded by a careless rule)
        a.send(make_mail(sender="support@b.test", to="support@a.test", subject="from B").as_bytes(),
               to=("support@a.test",), sender="support@b.test")
        wait_for(lambda: len(json_in_process(b.config, "tickets", "--status", "all")) == 1)
        import time
        time.sleep(3)  # give a loop every chance to show itself
        assert len(json_in_process(a.config, "tickets", "--status", "all")) == 1
        assert len(json_in_process(b.config, "tickets", "--status", "all")) == 1
        assert len(json_in_process(a.config, "outbox", "--state", "all")) == 1
        assert json_in_process(b.config, "outbox", "--state", "all") == []
    finally:
        a.stop()
        b.stop()


def test_delivery_report_for_a_relayed_mail_is_attached_as_bounce(daemon: Daemon, sink: Sink) -> None:
    add_worker(daemon.config)
    daemon.send(make_mail(sender=f"Alice <{CUSTOMER}>").as_bytes(), sender=CUSTOMER)
    (note,) = arrived(sink, WORKER, 1)
    daemon.send(worker_answer(note, "Please send the model number.").as_bytes(), sender=WORKER)
    arrived(sink, CUSTOMER, 2)  # the acknowledgement, then Jane's answer: the mail that bounces
    relayed_raw = [raw for _, rcpts, raw in sink.received if CUSTOMER in rcpts][-1]
    assert b"Please send the model number." in relayed_raw
    dsn = postfix_dsn(CUSTOMER, relayed_raw)
    with daemon.smtp() as client:
        client.sendmail("", ["support@example.com"], dsn)
    wait_for(lambda: ticket(daemon)["message_count"] == 3)
    assert len(json_in_process(daemon.config, "tickets", "--status", "all")) == 1, "a bounce never opens a ticket"
    shown = ticket(daemon)
    assert shown["messages"][-1]["from"] == "mailer-daemon@mx.customer.test"
    db = open_database(daemon.settings.database.url)
    with db.read() as session:
        bounced = session.scalars(select(AddressRow).where(AddressRow.email == CUSTOMER)).one()
        kind = session.scalars(select(Message.kind).order_by(Message.id.desc())).first()
    db.dispose()
    assert bounced.bouncing and kind is MessageKind.BOUNCE
    before = len(sink.received)
    import time
    time.sleep(1)
    assert len(sink.received) == before, "a bounce is shown, not relayed or acknowledged"


def postfix_dsn(recipient: str, original: bytes) -> bytes:
    """A delivery status notification shaped as Postfix writes one (RFC 3464)."""
    boundary = "4C2A3E1F0.1700000000/mx.customer.test"
    headers_end = original.find(b"\r\n\r\n")
    return (
        "From: MAILER-DAEMON@mx.customer.test (Mail Delivery System)\r\n"
        "To: support@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-Id: {make_msgid(domain='mx.customer.test')}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n"
        f"<{recipient}>: host mx.customer.test said: 550 5.1.1 User unknown\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.test\r\nArrival-Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\nAction: failed\r\n"
        "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--{boundary}\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    ).encode() + original[:headers_end + 2] + f"\r\n--{boundary}--\r\n".encode()
