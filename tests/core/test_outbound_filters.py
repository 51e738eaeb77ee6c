"""Every mail the helpdesk writes passes the outgoing filters, then the worker-address guard, into the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.compose import Rendered
from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.mail_purpose import MailPurpose
from core.due_tickets import reopen_due_tickets
from core.lifecycle import wait_until
from core.models import AuditEntry, Group, OutboxItem, Status, Ticket, utcnow
from core.notify import Outbound, send_sign_in_link
from core.outbox import OutgoingFilter, OutgoingMail
from core.pipeline import Delivery, run_pipeline
from core.settings import Settings
from core.staff import add_group, add_worker
from mailgate.parse import parse_message
from testkit import make_mail

DESK = "desk@example.com"
WORKER = "jane@corp.test"
ALICE = "alice@customer.test"
FOOTER = "-- sent by the Desk group of Example Ltd"


@dataclass
class Footer:
    """A filter as a per-group footer would be: it adds a line to both parts and remembers what it saw."""

    seen: list[tuple[MailPurpose, tuple[str, ...]]] = field(default_factory=list)

    def __call__(self, session: Session, mail: OutgoingMail, now: datetime) -> OutgoingMail:
        self.seen.append((mail.purpose, mail.rcpt_tos))
        body = mail.content.body
        footed = Rendered(text=f"{body.text}\n{FOOTER}\n", html=body.html.replace("</body>", f"<p>{FOOTER}</p></body>"))
        return replace(mail, content=replace(mail.content, body=footed))


@pytest.fixture
def desk(database: Database, settings: Settings) -> Database:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_group(session, "Desk", DESK, auto_reply=True, close_notice=True)
        add_worker(session, WORKER, "Jane Doe", ["Desk"])
    return database


def file(database: Database, settings: Settings, out: Outbound, mail: EmailMessage, mail_from: str) -> None:
    """One mail through the real inbound pipeline, in its own transaction, as the daemon files it."""
    message = parse_message(mail.as_bytes(), Envelope("smtp", mail_from, (DESK,)))
    with database.write() as session:
        run_pipeline(Delivery(session, message, settings.helpdesk, utcnow(), out))


def queued(database: Database) -> list[tuple[OutboxItem, EmailMessage]]:
    with database.read() as session:
        items = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        return [(item, message_from_bytes(item.raw, policy=default)) for item in items]


def notification_id(database: Database) -> str:
    (item, mail), *_ = [(i, m) for i, m in reversed(queued(database)) if i.purpose == MailPurpose.WORKER_NOTIFICATION]
    return str(mail["Message-ID"])


def every_kind_of_mail(database: Database, settings: Settings, filters: tuple[OutgoingFilter, ...]) -> None:
    """A conversation that makes the helpdesk write each kind of mail once at least, and a due time reached."""
    out = Outbound("postdesk.test", timedelta(hours=1), filters=filters)
    file(database, settings, out, make_mail(sender=f"Alice <{ALICE}>", to=DESK), ALICE)  # notification, auto_reply
    note = notification_id(database)
    with database.write() as session:  # the close notice carries a transcript's link, copied to the group's log
        desk = session.scalars(select(Group).where(Group.address == DESK)).one()
        desk.transcripts, desk.transcript_address = True, "closed-log@archive.test"
    for body in ("#frobnicate\nHello", "On it.", "#close\nFixed, closing."):  # command_error, reply, close_notice
        file(database, settings, out, make_mail(sender=WORKER, to=DESK, in_reply_to=note, body=body), WORKER)
    original = make_mail(sender="carol@customer.test", to=DESK, cc="bob@customer.test, erin@customer.test",
                         subject="Fuse", message_id="<orig@customer.test>")
    for name in ("bob", "erin"):  # two replies before their original open two tickets; the original merges them
        file(database, settings, out, make_mail(sender=f"{name}@customer.test", to=DESK, subject="Re: Fuse",
                                                in_reply_to="<orig@customer.test>", references="<orig@customer.test>",
                                                body=f"{name} here"), f"{name}@customer.test")
    file(database, settings, out, original, "carol@customer.test")
    capped = replace(out, hourly_cap=1)
    for n in range(2):  # Jane's second notification about Dan's ticket is held: the cap's alarm goes out
        file(database, settings, capped, make_mail(sender="dan@customer.test", to=DESK, subject="Loop",
                                                   message_id=f"<loop{n}@customer.test>",
                                                   in_reply_to="<loop0@customer.test>" if n else None),
             "dan@customer.test")
    later = utcnow() + timedelta(days=1)
    with database.write() as session:  # a ticket waiting until a date the clock reaches: its workers are told
        ticket = session.scalars(select(Ticket).where(Ticket.status == Status.OPEN).order_by(Ticket.id)).first()
        assert ticket is not None
        wait_until(session, ticket, later - timedelta(hours=1), actor=WORKER, now=utcnow())
    with database.write() as session:
        assert reopen_due_tickets(session, out, later) == 1
        group = session.scalars(select(Group).where(Group.address == DESK)).one()
        send_sign_in_link(session, out, group, WORKER, "http://127.0.0.1:8025/sign-in/link/x", 15, utcnow())


@pytest.mark.sqlite_only
def test_a_registered_filter_sees_and_changes_every_kind_of_mail(desk: Database, settings: Settings) -> None:
    footer = Footer()
    every_kind_of_mail(desk, settings, (footer,))
    rows = queued(desk)
    assert {purpose for purpose, _ in footer.seen} == set(MailPurpose), "each kind passed the filter"
    assert {item.purpose for item, _ in rows} == {purpose.value for purpose in MailPurpose}
    assert len(footer.seen) == len(rows), "nothing reached the outbox around the filter"
    for item, mail in rows:
        text, html = mail.get_body(("plain",)), mail.get_body(("html",))
        assert text is not None and html is not None, f"{item.purpose} has a text and an HTML part"
        assert text.get_content().splitlines()[-1] == FOOTER, item.purpose
        assert f"<p>{FOOTER}</p></body>" in html.get_content(), item.purpose


@pytest.mark.sqlite_only
def test_the_worker_address_guard_runs_after_every_filter(desk: Database, settings: Settings) -> None:
    """A filter that writes a worker's address into each mail cannot get it past the guard to a customer."""

    def sign_as_jane(session: Session, mail: OutgoingMail, now: datetime) -> OutgoingMail:
        body = mail.content.body
        signed = Rendered(text=body.text + f"Jane, {WORKER}\n", html=body.html)
        return replace(mail, content=replace(mail.content, body=signed))

    out = Outbound("postdesk.test", timedelta(hours=1), filters=(sign_as_jane,))
    file(desk, settings, out, make_mail(sender=f"Alice <{ALICE}>", to=DESK), ALICE)
    with desk.read() as session:
        held = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "held_private_address")).all()
    assert [(item.purpose, item.rcpt_tos) for item, _ in queued(desk)] == [("notification", [WORKER])]
    assert held == [f"auto_reply to {ALICE} would show a worker's address; not sent"]


@pytest.mark.sqlite_only
def test_a_filter_may_hold_a_mail(desk: Database, settings: Settings) -> None:
    def no_acknowledgements(session: Session, mail: OutgoingMail, now: datetime) -> OutgoingMail | None:
        return None if mail.purpose is MailPurpose.AUTO_REPLY else mail

    out = Outbound("postdesk.test", timedelta(hours=1), filters=(no_acknowledgements,))
    file(desk, settings, out, make_mail(sender=f"Alice <{ALICE}>", to=DESK), ALICE)
    assert [item.purpose for item, _ in queued(desk)] == ["notification"]
