"""The customer's side in core (issue 15): links, sessions, what a customer sees and does, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import select

from core.accounts import SignInRefused, SignInThrottled
from core.customer_accounts import CustomerSessionView
from core.db import Database
from core.desk import Actor, Helpdesk
from core.desk_portal import CustomerRequest
from core.errors import TicketNotFound, UsageError
from core.inbound import Envelope, InboundAttachment
from core.models import (AuditEntry, LastAction, Message, MessageKind, OutboxItem, Priority, Status, Ticket,
                         WebSession)
from core.portal_views import CustomerStatus, PortalFilter, customer_status
from core.settings import Settings
from mailgate.deliver import deliver
from testkit import Clock, make_mail, text_of
from web_kit import JANE, UNKNOWN_MASK, desk_with_jane

ALICE, BOB = "alice@customer.test", "bob@other.test"


@pytest.fixture
def desk(settings: Settings, database: Database, clock: Clock) -> Helpdesk:
    desk_with_jane(settings, database)
    for sender, subject, body in ((f"Alice <{ALICE}>", "Printer on fire", "The printer is on fire."),
                                  (f"Bob <{BOB}>", "Invoice wrong", "Invoice 1003 is wrong.")):
        deliver(database, settings, make_mail(sender=sender, subject=subject, body=body).as_bytes(),
                Envelope("deliver", "", ("support@example.com",)))
    return Helpdesk(settings, database, clock=clock)


def link_token(database: Database, to: str) -> str:
    """The token of the newest portal link mailed to this address, read from the outbox."""
    with database.read() as session:
        raws = [item.raw for item in session.scalars(select(OutboxItem).order_by(OutboxItem.id.desc()))
                if to in item.rcpt_tos]
    for raw in raws:
        found = re.search(r"/portal/sign-in/([A-Za-z0-9_-]+)", text_of(message_from_bytes(raw, policy=default)))
        if found:
            return found[1]
    raise AssertionError(f"no portal link mailed to {to}")


def signed_in(desk: Helpdesk, database: Database, email: str) -> CustomerSessionView:
    desk.mail_portal_link(email, "127.0.0.1")
    signed = desk.portal_sign_in(link_token(database, email), "127.0.0.1")
    view = desk.portal_session(signed.token)
    assert view is not None and view.email == email
    return view


def mask_of(database: Database, subject: str) -> str:
    with database.read() as session:
        return session.scalars(select(Ticket.mask).where(Ticket.subject == subject)).one()


def test_the_five_statuses_come_from_one_function() -> None:
    assert customer_status(Status.WAITING, LastAction.WORKER_REPLIED, True) is CustomerStatus.WAITING_USER
    assert customer_status(Status.CLOSED, LastAction.NEW, False) is CustomerStatus.CLOSED
    assert customer_status(Status.OPEN, LastAction.WORKER_REPLIED, True) is CustomerStatus.ANSWERED
    assert customer_status(Status.OPEN, LastAction.RECIPIENT_REPLIED, True) is CustomerStatus.IN_PROGRESS
    assert customer_status(Status.OPEN, LastAction.NEW, False) is CustomerStatus.OPEN
    assert customer_status(Status.DELETED, LastAction.NEW, False) is None
    assert customer_status(Status.SPAM, LastAction.NEW, False) is None


def test_a_link_signs_a_customer_in_once_and_only_within_its_minutes(desk: Helpdesk, database: Database,
                                                                      clock: Clock) -> None:
    desk.mail_portal_link(ALICE.upper(), "10.0.0.1")
    token = link_token(database, ALICE)
    signed = desk.portal_sign_in(token, "10.0.0.1")
    with pytest.raises(SignInRefused):
        desk.portal_sign_in(token, "10.0.0.1")  # used
    desk.mail_portal_link(ALICE, "10.0.0.1")
    late = link_token(database, ALICE)
    clock.now += timedelta(minutes=16)
    with pytest.raises(SignInRefused):
        desk.portal_sign_in(late, "10.0.0.1")  # expired
    assert desk.portal_session(signed.token) is not None
    desk.portal_sign_out(signed.token)
    assert desk.portal_session(signed.token) is None
    with database.read() as session:  # a customer's session is no worker's: the desk's table never holds it
        assert session.scalars(select(WebSession)).all() == []
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.ticket_id.is_(None))).all()
    assert {"portal_link", "portal_sign_in", "portal_link_refused", "portal_sign_out"} <= set(actions)


def test_the_form_answers_alike_and_mails_only_customers(desk: Helpdesk, database: Database) -> None:
    with database.read() as session:
        before = len(session.scalars(select(OutboxItem.id)).all())
    for stranger in ("nobody@nowhere.test", JANE, "not an address"):
        assert desk.mail_portal_link(stranger, "10.0.0.2") is None
    with database.read() as session:
        assert len(session.scalars(select(OutboxItem.id)).all()) == before  # nothing mailed, nothing told
    for _ in range(3):
        desk.mail_portal_link(ALICE, "10.0.0.3")
    desk.mail_portal_link(ALICE, "10.0.0.4")  # a fourth within the window mails nothing
    with database.read() as session:
        links = [r for r in session.scalars(select(OutboxItem.raw)) if b"/portal/sign-in/" in r]
    assert len(links) == 3


def test_requests_are_throttled_per_client(desk: Helpdesk) -> None:
    for n in range(20):
        desk.mail_portal_link(f"someone{n}@nowhere.test", "10.9.9.9")
    with pytest.raises(SignInThrottled) as refused:
        desk.mail_portal_link(ALICE, "10.9.9.9")
    assert refused.value.retry_after > 0


def test_a_customer_sees_only_their_tickets_and_nothing_internal(desk: Helpdesk, database: Database) -> None:
    alice = signed_in(desk, database, ALICE)
    printer, invoice = mask_of(database, "Printer on fire"), mask_of(database, "Invoice wrong")
    desk.comment([printer], "Internal: the customer is on the cheap plan.", Actor(JANE))
    desk.reply(printer, "Unplug it, then plug it in again.", [], Actor(JANE))
    rows = desk.customer_tickets(alice.email)
    assert [(r.mask, r.status) for r in rows] == [(printer, CustomerStatus.WAITING_USER)]  # a reply waits for them
    desk.reopen([printer], Actor(JANE))
    assert [r.status for r in desk.customer_tickets(alice.email)] == [CustomerStatus.ANSWERED]
    shown = desk.customer_ticket(alice.email, printer)
    said = " ".join(e.text for e in shown.transcript.entries)
    assert "Unplug it" in said and "on fire" in said and "cheap plan" not in said
    assert JANE not in repr(shown)  # the worker signs with a name, never an address
    for mask in (invoice, UNKNOWN_MASK, invoice[:5]):
        with pytest.raises(TicketNotFound) as refused:
            desk.customer_ticket(alice.email, mask)
        assert str(refused.value) == f"no ticket with mask {mask}"  # the same words for theirs and no one's
    assert desk.customer_tickets(alice.email, PortalFilter(words="cheap plan")) == []  # comments are not searched
    desk.customer_reply(alice, printer, f"Your colleague {JANE} said so, and it burns again.")
    for words in (JANE, "jane@corp", "again"):  # a worker's address is no search word: found or not, no answer
        found = desk.customer_tickets(alice.email, PortalFilter(words=words))
        assert [r.mask for r in found] == ([printer] if words == "again" else []), words


def test_filters_search_and_the_badge(desk: Helpdesk, database: Database, clock: Clock) -> None:
    alice = signed_in(desk, database, ALICE)
    second = desk.customer_open_ticket(alice, CustomerRequest("Toner", "Where do I buy toner cartridges?"))
    first = mask_of(database, "Printer on fire")
    assert {r.mask for r in desk.customer_tickets(ALICE, PortalFilter(words="TONER cartridges"))} == {second}
    assert {r.mask for r in desk.customer_tickets(ALICE, PortalFilter(words="fire"))} == {first}
    assert desk.customer_tickets(ALICE, PortalFilter(words="100%_")) == []
    desk.wait([first], clock.now + timedelta(days=2), Actor(JANE))
    assert desk.waiting_for_customer(ALICE) == 1
    desk.close([second], Actor(JANE))
    assert [r.mask for r in desk.customer_tickets(ALICE)] == [first]  # default: all but closed
    closed = desk.customer_tickets(ALICE, PortalFilter(statuses=(CustomerStatus.CLOSED,)))
    assert [r.mask for r in closed] == [second]
    today = clock.now.date()
    assert desk.customer_tickets(ALICE, PortalFilter(created_from=today + timedelta(days=1))) == []
    assert desk.customer_tickets(ALICE, PortalFilter(created_to=today - timedelta(days=1))) == []


def test_a_portal_ticket_takes_the_road_of_mail(desk: Helpdesk, database: Database, settings: Settings) -> None:
    alice = signed_in(desk, database, ALICE)
    mask = desk.customer_open_ticket(alice, CustomerRequest(
        "Scanner jams", "The scanner jams on page two.", Priority.HIGH,
        (InboundAttachment("jam.txt", "text/plain", b"page two"),)))
    with database.read() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).one()
        message = session.scalars(select(Message).where(Message.ticket_id == ticket.id)).one()
        queued = session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id)).all()
        history = session.scalars(select(AuditEntry.action).where(AuditEntry.ticket_id == ticket.id)).all()
        assert ticket.priority is Priority.HIGH and ticket.spam_score is not None  # scored as mail is
        assert message.kind is MessageKind.INBOUND and not message.unverified_sender
        assert b"The scanner jams" in message.raw and b"X-Postdesk-Source: portal" in message.raw
        assert len(message.attachments) == 1
        recipients = {e for item in queued for e in item.rcpt_tos}
    assert ALICE in recipients and JANE in recipients  # acknowledged, and the workers told
    assert {"created", "priority", "portal_opened"} <= set(history)
    shown = desk.customer_ticket(ALICE, mask)
    found, data = desk.customer_attachment(ALICE, mask, shown.attachments[0].id)
    assert (found.filename, data) == ("jam.txt", b"page two")
    with pytest.raises(TicketNotFound):
        desk.customer_attachment(BOB, mask, shown.attachments[0].id)  # not Bob's ticket


def test_a_reply_reopens_a_waiting_ticket_and_closing_is_the_customers_own(desk: Helpdesk, database: Database,
                                                                           clock: Clock) -> None:
    alice = signed_in(desk, database, ALICE)
    mask = mask_of(database, "Printer on fire")
    desk.wait([mask], clock.now + timedelta(days=3), Actor(JANE))
    desk.customer_reply(alice, mask, "It is still smoking.", (InboundAttachment("smoke.jpg", "image/jpeg", b"\xff"),))
    with database.read() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).one()
        assert ticket.status is Status.OPEN and ticket.last_action is LastAction.RECIPIENT_REPLIED
        texts = session.scalars(select(Message.text).where(Message.ticket_id == ticket.id,
                                                           Message.unverified_sender.is_(False))).all()
    assert any("still smoking" in t for t in texts)
    bob = signed_in(desk, database, BOB)
    with pytest.raises(TicketNotFound):
        desk.customer_reply(bob, mask, "I am not Alice.")
    with pytest.raises(TicketNotFound):
        desk.customer_close(bob, mask)
    with pytest.raises(UsageError):
        desk.customer_reply(alice, mask, "   ")
    assert desk.customer_close(alice, mask) is True
    assert desk.customer_close(alice, mask) is False
    with database.read() as session:
        closed_by = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "status")
                                    .order_by(AuditEntry.id.desc())).first()
    assert closed_by == ALICE
    desk.delete([mask], Actor(JANE))
    assert desk.customer_tickets(ALICE, PortalFilter(statuses=tuple(CustomerStatus))) == []  # deleted: not shown
