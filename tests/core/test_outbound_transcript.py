"""A ticket's Transcript is its public conversation: comments, unproven mail and worker addresses stay out."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import select

from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import Message, OutboxItem, Ticket
from core.settings import Settings
from core.staff import add_worker
from core.transcript import read_transcript
from mailgate.deliver import deliver
from testkit import make_mail

WORKER = "jane@corp.test"
SUPPORT = "support@example.com"


@pytest.mark.sqlite_only
def test_the_transcript_holds_what_customers_saw_and_nothing_else(database: Database, settings: Settings) -> None:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_worker(session, WORKER, "Jane Doe", ["Support"])
    first = make_mail(sender="Alice <alice@customer.test>", body="The printer is on fire.")
    deliver(database, settings, first.as_bytes(), Envelope("smtp", "alice@customer.test", (SUPPORT,)))
    with database.read() as session:
        note, ack = (message_from_bytes(raw, policy=default) for raw in
                     session.scalars(select(OutboxItem.raw).order_by(OutboxItem.id)))
    token = ack["Reply-To"].addresses[0].addr_spec  # Alice's own token, in Mallory's hands: links, proves nothing
    for body in ("#comment\ninternal: she is a reseller", f"Unplug it.\n-- \nJane Doe | {WORKER}"):
        answer = make_mail(sender=WORKER, in_reply_to=str(note["Message-ID"]), body=body)
        deliver(database, settings, answer.as_bytes(), Envelope("smtp", WORKER, (SUPPORT,)))
    forged = make_mail(sender="mallory@elsewhere.test", to=token, body="Pay me.")
    deliver(database, settings, forged.as_bytes(), Envelope("smtp", "mallory@elsewhere.test", (token,)))
    with database.read() as session:
        ticket = session.scalars(select(Ticket)).one()
        kinds = sorted((m.kind.value, m.unverified_sender) for m in session.scalars(select(Message)))
        transcript = read_transcript(session, ticket)
    assert kinds == [("comment", False), ("inbound", False), ("inbound", True), ("reply", False)], "all stored"
    assert [(e.author, e.by_worker, e.text.strip()) for e in transcript.entries] == [
        ("Alice", False, "The printer is on fire."),
        ("Jane Doe", True, "Unplug it."),
    ], "no comment, no unproven mail, no signature with an address"
    assert (transcript.mask, transcript.subject, transcript.group) == (ticket.mask, "Printer on fire", "Support")
