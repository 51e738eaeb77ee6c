"""A worker's answer typed (CLI, web) or mailed is one WorkerAnswer, filed by one set of rules (issue 13, item 4)."""

from __future__ import annotations

from sqlalchemy import select

from core.addresses import Address
from core.conversation import answer_as_worker
from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import Message, OutboxItem, Priority, Status, Ticket, Worker, utcnow
from core.notify import Outbound
from core.settings import Settings
from core.staff import add_worker
from core.worker_answer import WorkerAnswer
from mailgate.deliver import deliver
from mailgate.parse import parse_message
from testkit import make_mail

TEXT = "#priority high\nUnplug it, then plug it in again.\n"


def two_tickets(database: Database, settings: Settings) -> list[int]:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_worker(session, "jane@corp.test", "Jane Doe", ["Support"])
    for number in range(2):
        mail = make_mail(sender="Alice <alice@customer.test>", subject=f"Printer {number}", body="It broke.")
        deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))
    with database.read() as session:
        return list(session.scalars(select(Ticket.id).order_by(Ticket.id)))


def test_the_same_answer_typed_or_mailed_changes_the_ticket_alike(database: Database, settings: Settings) -> None:
    typed_ticket, mailed_ticket = two_tickets(database, settings)
    mail = parse_message(make_mail(sender="Jane Doe <jane@corp.test>", subject="Re: Printer 1", body=TEXT).as_bytes(),
                         Envelope("smtp", "jane@corp.test"))
    out = Outbound.from_settings(settings)
    with database.write() as session:
        jane = session.scalars(select(Worker)).one()
        typed = WorkerAnswer.typed(Address(jane.email, jane.name), "Re: Printer 0", TEXT, (),
                                   hostname="postdesk.test", now=utcnow())
        answer_as_worker(session, out, session.get(Ticket, typed_ticket), jane, typed, utcnow())
        answer_as_worker(session, out, session.get(Ticket, mailed_ticket), jane, WorkerAnswer.by_mail(mail), utcnow())
    with database.read() as session:
        tickets = [session.get(Ticket, i) for i in (typed_ticket, mailed_ticket)]
        assert [(t.status, t.priority) for t in tickets] == [(Status.WAITING, Priority.HIGH)] * 2
        replies = {m.ticket_id: m for m in session.scalars(select(Message).where(Message.author_worker_id == jane.id))}
        assert replies[typed_ticket].text == replies[mailed_ticket].text == "Unplug it, then plug it in again."
        assert replies[typed_ticket].headers == [] and replies[typed_ticket].raw == TEXT.encode()  # no mail invented
        assert replies[mailed_ticket].raw == mail.raw and replies[mailed_ticket].headers
        relayed = {item.ticket_id: item.raw for item in session.scalars(select(OutboxItem).where(
            OutboxItem.purpose == "reply"))}
    assert set(relayed) == {typed_ticket, mailed_ticket}
    assert all(b"Unplug it" in raw and b"jane@corp.test" not in raw and b"#priority" not in raw
               for raw in relayed.values())


def test_a_comment_keeps_what_the_worker_wrote_not_the_notification_it_quotes(database: Database,
                                                                               settings: Settings) -> None:
    ticket_id, _ = two_tickets(database, settings)
    answer = ("#comment\nCalled them, the invoice comes Monday.\n\nOn Mon, 30 Nov 2026, Support wrote:\n"
              "> New mail on XER-1: It broke.\n> Answer this mail to reply.\n")
    with database.write() as session:
        jane = session.scalars(select(Worker)).one()
        typed = WorkerAnswer.typed(Address(jane.email, jane.name), "Re: Printer 0", answer, (),
                                   hostname="postdesk.test", now=utcnow())
        stored = answer_as_worker(session, Outbound.from_settings(settings), session.get(Ticket, ticket_id), jane,
                                  typed, utcnow())
        assert (stored.kind.value, stored.text) == ("comment", "Called them, the invoice comes Monday.")
        assert stored.raw == answer.encode()  # the whole of it is still kept
