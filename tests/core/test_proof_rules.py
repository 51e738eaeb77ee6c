"""Reply tokens, the hourly cap and the recipient limit, through the real pipeline on a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import AuditEntry, OutboxItem, SentRecipient, Ticket, utcnow
from core.personal_mail import Person, send_to_each
from core.compose import Outgoing, Rendered, mailbox
from core.mail_purpose import MailPurpose
from core.reply_tokens import read_tag, reply_address, tag_is_for, without_tag
from core.settings import Settings
from core.staff import add_worker
from mailgate.deliver import deliver
from testkit import make_mail

ALICE = "alice@customer.test"


@pytest.fixture
def ticket_mask(database: Database, settings: Settings) -> str:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_worker(session, "jane@corp.test", "Jane Doe", ["Support"])
    deliver(database, settings, make_mail(sender=f"Alice <{ALICE}>").as_bytes(),
            Envelope("smtp", ALICE, ("support@example.com",)))
    with database.read() as session:
        return session.scalars(select(Ticket.mask)).one()


def test_a_reply_token_is_bound_to_its_person_and_ticket(database: Database, ticket_mask: str) -> None:
    with database.write() as session:
        address = reply_address(session, "support@example.com", ticket_mask, ALICE)
        tag = read_tag(address)
        assert tag is not None and tag.mask == ticket_mask and without_tag(address) == "support@example.com"
        assert tag_is_for(session, tag, ALICE)
        assert not tag_is_for(session, tag, "mallory@evil.test")
        forged = read_tag(address.replace(tag.mac, "a" * len(tag.mac)))
        assert forged is not None and not tag_is_for(session, forged, ALICE)
        again = reply_address(session, "support@example.com", ticket_mask, ALICE.upper())
    assert again == address, "the same key for every transaction and process (kept in the database)"
    assert read_tag("support@example.com") is None and read_tag("support+hello@example.com") is None


@pytest.mark.sqlite_only
def test_a_forged_token_joins_nothing(database: Database, settings: Settings, ticket_mask: str) -> None:
    with database.write() as session:
        real = reply_address(session, "support@example.com", ticket_mask, ALICE)
    forged = real.rsplit(".", 1)[0] + "." + "b" * 16 + "@example.com"
    deliver(database, settings, make_mail(sender=f"Alice <{ALICE}>", to=forged, subject="x").as_bytes(),
            Envelope("smtp", "m@evil.test", (forged,)))
    deliver(database, settings, make_mail(sender="mallory@evil.test", to=real, subject="y").as_bytes(),
            Envelope("smtp", "m@evil.test", (real,)))
    with database.read() as session:
        tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
        first = tickets[0]
        flags = [m.unverified_sender for m in first.messages]
    assert len(tickets) == 2, "a forged token is no link at all: Alice's claim opened its own ticket"
    assert flags == [False, True], "Alice's real token in Mallory's hands links, but proves nothing"


@pytest.mark.sqlite_only
def test_the_hourly_cap_holds_mail_and_tells_the_workers_once(database: Database, settings: Settings,
                                                               ticket_mask: str) -> None:
    now = utcnow()
    with database.write() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == ticket_mask)).one()
        group = ensure_default_group(session, settings.helpdesk)

        def compose(person: Person) -> Outgoing:
            return Outgoing(sender=mailbox(group.address), to=[mailbox(person.email)], subject="s",
                            body=Rendered("b", "<p>b</p>"))

        sent = [send_to_each(session, ticket, group, [Person(ALICE)], compose, purpose=MailPurpose.WORKER_REPLY,
                             hostname="postdesk.test", cap=3, now=now + timedelta(minutes=n)) for n in range(6)]
        later = send_to_each(session, ticket, group, [Person(ALICE)], compose, purpose=MailPurpose.WORKER_REPLY,
                             hostname="postdesk.test", cap=3, now=now + timedelta(minutes=70))
    assert sent.count([ALICE]) == 2 and later == [ALICE], "the acknowledgement counted; an hour later mail flows"
    with database.read() as session:
        audits = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "mail_cap")).all()
        alarms = session.scalars(select(OutboxItem.rcpt_tos).where(OutboxItem.purpose == "mail_cap")).all()
        counted = session.scalar(select(func.count()).select_from(SentRecipient)
                                 .where(SentRecipient.email == "jane@corp.test"))
    assert audits == [ALICE] and alarms == [["jane@corp.test"]], "once, however many were held"
    assert counted == 1, "the alarm itself counts against no one's cap (only Jane's notification does)"


@pytest.mark.sqlite_only
def test_a_new_ticket_takes_at_most_max_new_recipients(database: Database, settings: Settings) -> None:
    many = ", ".join(f"c{n}@customer.test" for n in range(500))
    deliver(database, settings, make_mail(sender=f"Alice <{ALICE}>", cc=many).as_bytes(),
            Envelope("smtp", ALICE, ("support@example.com",)))
    with database.read() as session:
        ticket = session.scalars(select(Ticket)).one()
        emails = [r.email for r in ticket.recipients]
        limited = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "recipients_limited")).all()
    assert len(emails) == settings.helpdesk.max_new_recipients == 20 and ALICE in emails
    assert len(limited) == 1 and "501 new addresses" in limited[0]


@pytest.mark.sqlite_only
def test_the_close_transcript_shows_no_workers_signature_or_address(database: Database, settings: Settings,
                                                                     ticket_mask: str) -> None:
    """A ticket a worker opened by mail (proven by DKIM, say) quotes her mail to the customer when it closes."""
    from core.addresses import Address
    from core.inbound import InboundMessage
    from core.transcript import read_transcript
    from core.tickets import store_message

    signed = InboundMessage(message_id="<w1@corp.test>", sender=Address("jane@corp.test", "Jane"), subject="s",
                            envelope=Envelope("smtp"), raw=b"x", text="Refund sent, see mailto:jane%40corp.test\n"
                            "-- \nJane Doe | jane@corp.test | +1 555 0100")
    with database.write() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == ticket_mask)).one()
        store_message(session, ticket, signed, verified=True, now=utcnow())
        transcript = read_transcript(session, ticket)
    text = "\n".join(f"{e.author}: {e.text}" for e in transcript.entries)
    assert "Refund sent" in text and "Help, please." in text
    assert "555 0100" not in text and "corp.test" not in text and "jane%40" not in text
