"""What the helpdesk writes on its own, read from the outbox: notifications, acknowledgements, loops stopped."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from sqlalchemy import select

from core.db import Database
from core.inbound import Envelope
from core.models import OutboxItem, Ticket
from core.settings import Settings
from core.staff import add_group, add_worker
from mailgate.deliver import deliver
from testkit import make_mail

WORKER = "jane@corp.test"


@pytest.fixture
def staffed(database: Database, settings: Settings) -> Database:
    with database.write() as session:
        from core.groups import ensure_default_group
        ensure_default_group(session, settings.helpdesk)
        add_group(session, "Billing", "billing@example.com", auto_reply=False, close_notice=True)
        add_worker(session, WORKER, "Jane Doe", ["Support"])
        add_worker(session, "bob@corp.test", "Bob Roe", ["Billing"])
    return database


def send(database: Database, settings: Settings, mail: EmailMessage, mail_from: str = "x@customer.test",
         rcpt: str = "support@example.com", source: str = "smtp") -> None:
    deliver(database, settings, mail.as_bytes(), Envelope(source, mail_from, (rcpt,)))


def outbox(database: Database, purpose: str | None = None) -> list[tuple[OutboxItem, EmailMessage]]:
    with database.read() as session:
        items = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        found = [(i, message_from_bytes(i.raw, policy=default)) for i in items]
    return [(i, m) for i, m in found if purpose is None or i.purpose == purpose]


def text_of(mail: EmailMessage) -> str:
    """The plain-text part, as a reader without HTML sees the mail."""
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_new_ticket_notifies_group_and_acknowledges(staffed: Database, settings: Settings) -> None:
    send(staffed, settings, make_mail(sender="Alice <alice@customer.test>"))
    (note_item, note), = outbox(staffed, "notification")
    (ack_item, ack), = outbox(staffed, "auto_reply")
    assert note_item.rcpt_tos == [WORKER] and ack_item.rcpt_tos == ["x@customer.test"], "to the return path"
    assert ack["Auto-Submitted"] == "auto-replied"


@pytest.mark.parametrize("header", ["Auto-Submitted: auto-generated", "Precedence: bulk", "Precedence: list",
                                    "List-Id: <announce.lists.test>", "Precedence: junk"])
def test_robot_mail_is_filed_but_never_answered(staffed: Database, settings: Settings, header: str) -> None:
    name, value = header.split(": ")
    mail = make_mail(sender="news@lists.test")
    mail[name] = value
    send(staffed, settings, mail)
    with staffed.read() as session:
        assert session.scalar(select(Ticket.id)) is not None
    assert outbox(staffed) == []


@pytest.mark.parametrize("sender, mail_from", [("MAILER-DAEMON@mx.test", "x@mx.test"),
                                               ("postmaster@mx.test", "x@mx.test"),
                                               ("alice@customer.test", ""),
                                               ("sales@example.com", "sales@example.com")])
def test_daemons_null_senders_and_our_own_addresses_get_nothing(staffed: Database, settings: Settings,
                                                                sender: str, mail_from: str) -> None:
    send(staffed, settings, make_mail(sender=sender), mail_from=mail_from)
    assert outbox(staffed) == []


def test_one_auto_reply_per_sender_per_window(staffed: Database, settings: Settings) -> None:
    for n in range(4):
        send(staffed, settings, make_mail(sender="robot@naive.test", subject=f"ticket {n}"))
    assert len(outbox(staffed, "auto_reply")) == 1
    assert len(outbox(staffed, "notification")) == 4


def test_group_address_routes_and_its_options_hold(staffed: Database, settings: Settings) -> None:
    send(staffed, settings, make_mail(sender="carol@customer.test", to="billing@example.com"),
         rcpt="billing@example.com")
    (item, _), = outbox(staffed)
    assert item.purpose == "notification" and item.rcpt_tos == ["bob@corp.test"]  # Billing: no auto-reply
    with staffed.read() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert (ticket.group.name, ticket.bucket.name) == ("Billing", "Inbox")


def test_owner_alone_is_notified(staffed: Database, settings: Settings) -> None:
    first = make_mail(sender="alice@customer.test")
    send(staffed, settings, first)
    (_, note), = outbox(staffed, "notification")
    answer = make_mail(sender=WORKER, in_reply_to=str(note["Message-ID"]), body="#owner bob@corp.test\nLooking.")
    send(staffed, settings, answer, mail_from=WORKER)
    send(staffed, settings, make_mail(sender="alice@customer.test", in_reply_to=first["Message-ID"], body="more"))
    assert [i.rcpt_tos for i, _ in outbox(staffed, "notification")] == [[WORKER], ["bob@corp.test"]]


def test_close_notice_carries_the_transcript_without_worker_addresses(staffed: Database, settings: Settings) -> None:
    send(staffed, settings, make_mail(sender="Carol <carol@customer.test>", to="billing@example.com",
                                      body="Invoice 42 is wrong."), rcpt="billing@example.com")
    (_, note), = outbox(staffed, "notification")
    send(staffed, settings, make_mail(sender="bob@corp.test", in_reply_to=str(note["Message-ID"]),
                                      body="#comment\ninternal: refund approved"), mail_from="bob@corp.test")
    send(staffed, settings, make_mail(sender="bob@corp.test", in_reply_to=str(note["Message-ID"]),
                                      body="#close\nFixed, a refund is on its way.\n-- \nbob@corp.test"),
         mail_from="bob@corp.test")
    (item, notice), = outbox(staffed, "close_notice")
    text = text_of(notice)
    assert item.rcpt_tos == ["carol@customer.test"]
    assert "Invoice 42 is wrong." in text and "Fixed, a refund is on its way." in text
    assert "refund approved" not in text and b"corp.test" not in item.raw


def test_worker_attachments_travel_and_quotes_do_not(staffed: Database, settings: Settings) -> None:
    send(staffed, settings, make_mail(sender="alice@customer.test"))
    (_, note), = outbox(staffed, "notification")
    answer = make_mail(sender=WORKER, in_reply_to=str(note["Message-ID"]),
                       body="Manual attached.\n\nOn Monday Alice wrote:\n> secret quoted history",
                       attachments=[("manual.pdf", "application/pdf", b"%PDF-1.4 manual")])
    send(staffed, settings, answer, mail_from=WORKER)
    (item, reply), = outbox(staffed, "reply")
    files = [(p.get_filename(), p.get_content()) for p in reply.iter_attachments()]
    assert files == [("manual.pdf", b"%PDF-1.4 manual")]
    assert "Manual attached." in text_of(reply) and "secret quoted history" not in text_of(reply)
    assert WORKER.encode() not in item.raw


def test_a_reply_of_commands_only_says_nothing_to_the_customer(staffed: Database, settings: Settings) -> None:
    send(staffed, settings, make_mail(sender="Alice Smith <alice@customer.test>"))
    (_, note), = outbox(staffed, "notification")
    send(staffed, settings, make_mail(sender=WORKER, in_reply_to=str(note["Message-ID"]), body="#waiting 2d"),
         mail_from=WORKER)
    assert outbox(staffed, "reply") == []
    send(staffed, settings, make_mail(sender=WORKER, in_reply_to=str(note["Message-ID"]), body="On it."),
         mail_from=WORKER)
    (_, reply), = outbox(staffed, "reply")
    assert str(reply["To"]) == "Alice Smith <alice@customer.test>"
    assert reply["Subject"].startswith("[") and "Re: Printer on fire" in reply["Subject"]
