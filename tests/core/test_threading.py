"""Threading and sender-trust rules, through the real spool, runner and pipeline on a real database."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core.db import Database
from core.inbound import Envelope
from core.models import Message, SentRecipient, Status, Ticket, utcnow
from core.ticket_views import show_ticket, ticket_history
from core.settings import Settings
from core.tickets import record_sent_message_id
from mailgate.deliver import deliver
from testkit import make_mail

ALICE = "Alice <alice@customer.test>"


def send(database: Database, settings: Settings, mail: object) -> None:
    deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))  # type: ignore[attr-defined]


def tickets(database: Database) -> list[Ticket]:
    with database.read() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))


def shown(database: Database, mask: str) -> dict:
    with database.engine.connect() as conn:
        return show_ticket(conn, mask)


def set_status(database: Database, mask: str, status: Status) -> None:
    with database.write() as session:
        session.scalars(select(Ticket).where(Ticket.mask == mask)).one().status = status


def test_new_ticket_has_mask_and_outside_recipients(database: Database, settings: Settings) -> None:
    send(database, settings, make_mail(sender=ALICE, to="support@example.com, bob@customer.test",
                                       cc="carol@partner.test, sales@example.com"))
    (ticket,) = tickets(database)
    assert re.fullmatch(r"[A-Z]{3}-\d{5}-\d{3}", ticket.mask)
    view = shown(database, ticket.mask)
    assert view["recipients"] == ["alice@customer.test", "bob@customer.test", "carol@partner.test"]
    assert view["status"] == "open" and view["last_action"] == "new" and view["priority"] == "normal"
    assert view["group"] == "Support" and view["bucket"] == "Inbox"


@pytest.mark.parametrize("subject", ["Re: [{mask}] Printer on fire", "Re: Printer on fire {mask}",
                                     "RE: printer [{lower}]"])
def test_follow_up_by_mask_from_a_recipient_is_kept_flagged(database: Database, settings: Settings,
                                                             subject: str) -> None:
    """A mask and a From line prove nothing: the mail joins its recipient's ticket, flagged, changing nothing."""
    send(database, settings, make_mail(sender=ALICE))
    (ticket,) = tickets(database)
    set_status(database, ticket.mask, Status.WAITING)
    send(database, settings, make_mail(sender=ALICE, body="more",
                                       subject=subject.format(mask=ticket.mask, lower=ticket.mask.lower())))
    assert len(tickets(database)) == 1
    view = shown(database, ticket.mask)
    assert view["message_count"] == 2 and view["messages"][1]["unverified_sender"]
    assert view["last_action"] == "new" and view["status"] == "waiting"


def test_follow_up_by_in_reply_to_and_by_references_only(database: Database, settings: Settings) -> None:
    first = make_mail(sender=ALICE)
    send(database, settings, first)
    second = make_mail(sender=ALICE, subject="no mask here", in_reply_to=first["Message-ID"])
    send(database, settings, second)
    third = make_mail(sender=ALICE, subject="nor here", references=f"<unknown@else.test> {second['Message-ID']}")
    send(database, settings, third)
    (ticket,) = tickets(database)
    assert shown(database, ticket.mask)["message_count"] == 3


def test_unknown_mask_is_treated_as_no_mask(database: Database, settings: Settings) -> None:
    send(database, settings, make_mail(sender=ALICE, subject="Re: [ABC-12345-678] hello"))
    send(database, settings, make_mail(sender=ALICE, subject="Re: [ABC-12345-678] hello again"))
    assert len(tickets(database)) == 2


def test_same_message_id_twice_is_stored_once(database: Database, settings: Settings) -> None:
    mail = make_mail(sender=ALICE, message_id="<once@customer.test>")
    send(database, settings, mail)
    send(database, settings, mail)
    (ticket,) = tickets(database)
    assert shown(database, ticket.mask)["message_count"] == 1


def test_stranger_quoting_a_mask_opens_a_ticket_of_its_own(database: Database, settings: Settings) -> None:
    send(database, settings, make_mail(sender=ALICE))
    (ticket,) = tickets(database)
    set_status(database, ticket.mask, Status.CLOSED)
    send(database, settings, make_mail(sender="Mallory <mallory@evil.test>", subject=f"Re: [{ticket.mask}]"))
    view = shown(database, ticket.mask)
    assert (view["message_count"], view["recipients"], view["status"]) == (1, ["alice@customer.test"], "closed")
    (own,) = [t for t in tickets(database) if t.mask != ticket.mask]
    with database.engine.connect() as conn:
        history = ticket_history(conn, own.mask)
    assert any(e["action"] == "quoted_mask" and ticket.mask in e["detail"] for e in history)


def sent_to(database: Database, mask: str, message_id: str, email: str) -> None:
    """As if the helpdesk had mailed `email` about the ticket with this Message-ID (core.outbox records it so)."""
    with database.write() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).one()
        record_sent_message_id(session, ticket, message_id)
        session.add(SentRecipient(message_id=message_id, email=email, ticket_id=ticket.id, sent_at=utcnow()))


def test_answering_a_helpdesk_id_proves_only_whom_it_was_sent_to(database: Database, settings: Settings) -> None:
    send(database, settings, make_mail(sender=ALICE))
    (ticket,) = tickets(database)
    sent_to(database, ticket.mask, "<sent-by-us.x7f3@postdesk.test>", "dave@customer.test")
    send(database, settings, make_mail(sender="Eve <eve@other.test>", subject="Re: something", cc="eve2@other.test",
                                       in_reply_to="<sent-by-us.x7f3@postdesk.test>"))
    send(database, settings, make_mail(sender="Dave <dave@customer.test>", subject="Re: something",
                                       in_reply_to="<sent-by-us.x7f3@postdesk.test>"))
    view = shown(database, ticket.mask)
    assert [m["unverified_sender"] for m in view["messages"]] == [False, False]
    assert view["recipients"] == ["alice@customer.test", "dave@customer.test"]
    assert len(tickets(database)) == 2, "Eve's answer to Dave's mail proves nothing: a ticket of her own"


def test_answers_to_a_helpdesk_id_prove_no_one_it_was_not_sent_to(database: Database, settings: Settings) -> None:
    """Dave answered our mail to him; one of the ticket's recipients, or a mail to Dave, answering the same id
    proves nothing by that (rule 2 binds our id to its addressee; rule 4c leaves it alone)."""
    send(database, settings, make_mail(sender=ALICE))
    (ticket,) = tickets(database)
    sent_to(database, ticket.mask, "<sent-by-us.d4v3@postdesk.test>", "dave@customer.test")
    send(database, settings, make_mail(sender="Dave <dave@customer.test>", subject="Re: something",
                                       in_reply_to="<sent-by-us.d4v3@postdesk.test>"))
    send(database, settings, make_mail(sender=ALICE, subject="Re: something",
                                       in_reply_to="<sent-by-us.d4v3@postdesk.test>"))
    send(database, settings, make_mail(sender="eve@other.test", cc="dave@customer.test", subject="Re: something",
                                       in_reply_to="<sent-by-us.d4v3@postdesk.test>"))
    view = shown(database, ticket.mask)
    assert view["message_count"] == 2 and [m["unverified_sender"] for m in view["messages"]] == [False, False]
    assert len(tickets(database)) == 3, "Alice's and Eve's answers open tickets of their own"


def test_someone_the_answerer_wrote_to_answering_the_same_mail_joins(database: Database, settings: Settings) -> None:
    """Rule 4c with the answered mail stored: Carol, Cc'd on Alice's reply, answers Alice's first mail.
    A stranger answering it, to no one who answered there, still opens a ticket of her own."""
    first = make_mail(sender=ALICE, message_id="<first@customer.test>")
    send(database, settings, first)
    send(database, settings, make_mail(sender=ALICE, cc="carol@customer.test", subject="Re: Printer on fire",
                                       in_reply_to="<first@customer.test>", references="<first@customer.test>"))
    send(database, settings, make_mail(sender="carol@customer.test", subject="Re: Printer on fire",
                                       in_reply_to="<first@customer.test>", references="<first@customer.test>"))
    send(database, settings, make_mail(sender="eve@other.test", subject="Re: Printer on fire",
                                       in_reply_to="<first@customer.test>", references="<first@customer.test>"))
    alices, eves = tickets(database)
    view = shown(database, alices.mask)
    assert view["message_count"] == 3 and not any(m["unverified_sender"] for m in view["messages"])
    assert shown(database, eves.mask)["recipients"] == ["eve@other.test"]


def test_stranger_answering_a_customer_message_id_opens_a_ticket_of_her_own(database: Database,
                                                                          settings: Settings) -> None:
    """An id proves nothing (and the mail it names could have arrived after): the same ticket in any order."""
    first = make_mail(sender=ALICE)
    send(database, settings, first)
    send(database, settings, make_mail(sender="eve@other.test", in_reply_to=first["Message-ID"]))
    alices, eves = tickets(database)
    assert shown(database, alices.mask)["recipients"] == ["alice@customer.test"]
    assert shown(database, alices.mask)["message_count"] == 1
    assert shown(database, eves.mask)["recipients"] == ["eve@other.test"]


@pytest.mark.parametrize("status, expected", [(Status.WAITING, "open"), (Status.CLOSED, "open"),
                                              (Status.DELETED, "deleted")])
def test_recipient_follow_up_reopens_unless_deleted(database: Database, settings: Settings,
                                                    status: Status, expected: str) -> None:
    first = make_mail(sender=ALICE)
    send(database, settings, first)
    (ticket,) = tickets(database)
    sent_to(database, ticket.mask, "<ack.k2j4@postdesk.test>", "alice@customer.test")
    set_status(database, ticket.mask, status)
    before = shown(database, ticket.mask)["updated"]
    send(database, settings, make_mail(sender=ALICE, in_reply_to="<ack.k2j4@postdesk.test>"))
    after = shown(database, ticket.mask)
    assert after["status"] == expected and after["message_count"] == 2
    # mail to a deleted ticket is kept but is no activity: its purge still counts from the deletion
    assert (after["updated"] == before) == (status is Status.DELETED)


def test_reply_filed_before_its_original_joins_one_ticket(database: Database, settings: Settings) -> None:
    original = make_mail(sender=ALICE, message_id="<orig@customer.test>")
    reply = make_mail(sender=ALICE, subject="Re: Printer on fire", in_reply_to="<orig@customer.test>",
                      references="<orig@customer.test>")
    send(database, settings, reply)
    send(database, settings, original)
    (ticket,) = tickets(database)
    assert shown(database, ticket.mask)["message_count"] == 2


def test_planted_reference_does_not_capture_a_strangers_thread(database: Database, settings: Settings) -> None:
    """Mallory mentions an id; a different sender's mail answering that id must not join Mallory's ticket."""
    send(database, settings, make_mail(sender="mallory@evil.test", references="<victim-thread@bank.test>"))
    send(database, settings, make_mail(sender="victim@bank.test", in_reply_to="<victim-thread@bank.test>"))
    assert len(tickets(database)) == 2


def test_mask_never_reveals_private_id(database: Database, settings: Settings) -> None:
    send(database, settings, make_mail(sender=ALICE))
    view = shown(database, tickets(database)[0].mask)
    assert "id" not in view and all("id" not in m for m in view["messages"])


def test_messages_keep_raw_bytes(database: Database, settings: Settings) -> None:
    mail = make_mail(sender=ALICE)
    send(database, settings, mail)
    with database.read() as session:
        assert session.scalars(select(Message.raw)).one() == mail.as_bytes()


def test_a_reused_message_id_with_other_content_is_filed_under_its_own_key(
        database: Database, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Generators reuse ids, and a stranger may send first with a predictable one: neither loses the real mail."""
    send(database, settings, make_mail(sender="mallory@evil.test", subject="Order 1002",
                                       message_id="<order-1002@shop.test>", body="Pay me instead."))
    real = make_mail(sender="Shop <orders@shop.test>", subject="Order 1002 shipped",
                     message_id="<order-1002@shop.test>", body="Your parcel is on its way.")
    with caplog.at_level("WARNING"):
        send(database, settings, real)
    send(database, settings, real)  # a re-delivery of the real one is still a duplicate
    first, second = tickets(database)
    assert shown(database, second.mask)["messages"][0]["text"].strip() == "Your parcel is on its way."
    assert shown(database, second.mask)["message_count"] == 1 and shown(database, first.mask)["message_count"] == 1
    assert "<order-1002@shop.test> was already used by another mail" in caplog.text


def test_mail_through_a_mailing_list_brings_in_its_writer_not_the_list(database: Database,
                                                                       settings: Settings) -> None:
    mail = make_mail(sender=ALICE, to="dev@lists.example.org", cc="support@example.com, bob@customer.test")
    mail["List-Id"] = "Developers <dev.lists.example.org>"
    mail["List-Post"] = "<mailto:dev@lists.example.org>"
    send(database, settings, mail)
    rewritten = make_mail(sender="Carol via Dev <dev@lists.example.org>", subject="other", to="support@example.com")
    rewritten["List-Post"] = "<mailto:dev@lists.example.org>"
    send(database, settings, rewritten)
    first, second = tickets(database)
    assert shown(database, first.mask)["recipients"] == ["alice@customer.test"]
    assert shown(database, second.mask)["recipients"] == [], "a list that writes as itself is no recipient"
