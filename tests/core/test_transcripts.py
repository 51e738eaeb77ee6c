"""Encrypted transcripts (issue 15, item 4): sealed on closing, opened only with the mailed link's key, kept
past the ticket's purge and deleted after their retention."""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select, text
from starlette.testclient import TestClient

from core.db import Database
from core.desk import Actor, Helpdesk
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import EncryptedTranscript, OutboxItem, SpamToken, Ticket
from core.settings import Settings
from mailgate.deliver import deliver
from mailgate.outbox_sender import OutboxSender
from testkit import Clock, Sink, json_in_process, make_mail, run_in_process, text_of
from web.app import create_app

JANE = "jane@corp.test"
ALICE = "alice@customer.test"
LOG = "closed-log@archive.test"
SUPPORT = "support@example.com"
PHRASE = "violet-quokka-7719 ledger"  # the customer's words: in the transcript, and after the purge nowhere else
ANSWER = "The amber-pelican-5521 line is fixed."  # Jane's reply: public, so in the transcript
COMMENT = "internal: cobalt-walrus-3308 is a reseller"  # Jane's comment: never in the transcript
LINK = re.compile(r"http://127\.0\.0\.1:8025/transcripts/([A-Za-z0-9_-]+)#([A-Za-z0-9_-]+)")


@dataclass(frozen=True)
class Link:
    """A transcript's link as mailed: its public id and its key."""

    url: str
    public_id: str
    fragment: str

    @property
    def key(self) -> bytes:
        return base64.urlsafe_b64decode(self.fragment + "=" * (-len(self.fragment) % 4))


def closed_case(settings: Settings, database: Database, clock: Clock) -> tuple[Helpdesk, str]:
    """Support keeps transcripts (its close notice stays off) with a log copy; Alice wrote, Jane answered,
    commented and closed. Returns the desk and the ticket's mask."""
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
    desk = Helpdesk(settings, database, clock)
    desk.add_worker(JANE, "Jane Doe", ["Support"])
    desk.edit_group("Support", transcripts=True, transcript_address=LOG)
    mail = make_mail(sender=f"Alice <{ALICE}>", subject="Ledger question", body=f"Please check the {PHRASE}.")
    deliver(database, settings, mail.as_bytes(), Envelope("smtp", ALICE, (SUPPORT,)))
    with database.read() as session:
        mask = session.scalars(select(Ticket.mask)).one()
    desk.comment([mask], COMMENT, Actor(JANE))
    desk.reply(mask, ANSWER, (), Actor(JANE))
    desk.close([mask], Actor(JANE))
    return desk, mask


def outbox(database: Database, purpose: str) -> list[tuple[OutboxItem, EmailMessage]]:
    with database.read() as session:
        items = session.scalars(select(OutboxItem).where(OutboxItem.purpose == purpose).order_by(OutboxItem.id))
        return [(item, message_from_bytes(item.raw, policy=default)) for item in items]  # type: ignore[misc]


def mailed_link(mail: EmailMessage) -> Link:
    (found,) = set(LINK.findall(text_of(mail)))
    return Link(f"http://127.0.0.1:8025/transcripts/{found[0]}#{found[1]}", found[0], found[1])


def decrypt(database: Database, link: Link, key: bytes | None = None, public_id: str | None = None) -> str:
    """What the page shows, decrypted here as the browser does: AES-256-GCM, the public id as associated data."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with database.read() as session:
        row = session.scalars(select(EncryptedTranscript).where(EncryptedTranscript.public_id == link.public_id)).one()
        nonce, ciphertext = row.nonce, row.ciphertext
    associated = (public_id or link.public_id).encode()
    return AESGCM(key or link.key).decrypt(nonce, ciphertext, associated).decode()


def every_stored_byte(database: Database, leaving_out: tuple[str, ...] = ()) -> bytes:
    """Every value of every table (but those left out), the search index's own tables too, as bytes: what a
    copy of the database reads."""
    with database.read() as session:
        if session.bind.dialect.name == "sqlite":  # type: ignore[union-attr]
            tables = session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'table'")).all()
        else:
            tables = session.scalars(text("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = current_schema()")).all()
        values = [value for table in tables if table not in leaving_out
                  for row in session.execute(text(f'SELECT * FROM "{table}"')) for value in row]
    return b"\n".join(bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode() for v in values)


def forms_of(link: Link) -> list[bytes]:
    """The key as it could be written: raw, base64 either way, hex."""
    return [link.key, link.fragment.encode(), base64.b64encode(link.key), link.key.hex().encode()]


def test_the_link_opens_the_public_conversation_and_nothing_else_does(settings: Settings, database: Database,
                                                                     clock: Clock) -> None:
    from cryptography.exceptions import InvalidTag

    closed_case(settings, database, clock)
    ((item, notice),) = outbox(database, "close_notice")
    link = mailed_link(notice)
    shown = decrypt(database, link)
    assert PHRASE in shown and ANSWER in shown and "Jane Doe" in shown, "the customer's mail and the answer"
    assert "cobalt-walrus" not in shown and JANE not in shown, "no comment, no worker's address"
    assert len(link.key) == 32, "a 256-bit key"
    with pytest.raises(InvalidTag):
        decrypt(database, link, key=bytes(32))
    with pytest.raises(InvalidTag):  # the ciphertext moved under another id no longer opens
        decrypt(database, link, public_id="another-id")


def test_the_database_holds_neither_the_conversation_nor_the_key_of_a_transcript(
        settings: Settings, database: Database, clock: Clock) -> None:
    closed_case(settings, database, clock)
    link = mailed_link(outbox(database, "close_notice")[0][1])
    with database.read() as session:
        (row,) = session.scalars(select(EncryptedTranscript)).all()
        sealed = b"\n".join([row.public_id.encode(), row.nonce, row.ciphertext])
    assert row.created_at == clock.now and len(row.nonce) == 12 and row.public_id == link.public_id
    for secret in (PHRASE.encode(), ANSWER.encode(), b"Ledger question", b"Jane Doe", *forms_of(link)):
        assert secret not in sealed
    stored = every_stored_byte(database, leaving_out=("outbox",))  # where the mail carrying the link waits
    assert PHRASE.encode() in stored, "the ticket itself is still there"
    for form in forms_of(link):
        assert form not in stored, "the key is in the mail that carries it, nowhere else"


def test_the_close_notice_carries_the_link_not_the_conversation_to_the_recipients_and_the_log(
        settings: Settings, database: Database, clock: Clock) -> None:
    closed_case(settings, database, clock)
    ((item, notice),) = outbox(database, "close_notice")
    ((copy_item, copy),) = outbox(database, "transcript_copy")
    assert (item.rcpt_tos, copy_item.rcpt_tos) == ([ALICE], [LOG]), "sent although the group's close notice is off"
    link = mailed_link(notice)
    assert mailed_link(copy) == link, "the log gets the same link"
    for mail in (notice, copy):
        html = mail.get_body(("html",))
        assert html is not None and link.url.replace("&", "&amp;") in html.get_content()
        whole = mail.as_string()
        assert "violet-quokka" not in whole and "amber-pelican" not in whole and "cobalt-walrus" not in whole
    assert notice["Reply-To"] is not None and copy["Reply-To"] is None, "the log gets no reply token"
    assert copy["Auto-Submitted"] == "auto-generated"


def test_a_group_without_transcripts_mails_the_conversation_as_before(settings: Settings, database: Database,
                                                                      clock: Clock) -> None:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
    desk = Helpdesk(settings, database, clock)
    desk.edit_group("Support", close_notice=True)
    deliver(database, settings, make_mail(sender=ALICE, body=f"Please check the {PHRASE}.").as_bytes(),
            Envelope("smtp", ALICE, (SUPPORT,)))
    with database.read() as session:
        mask = session.scalars(select(Ticket.mask)).one()
    desk.close([mask], Actor())
    ((_, notice),) = outbox(database, "close_notice")
    assert PHRASE in text_of(notice) and "/transcripts/" not in notice.as_string()
    assert outbox(database, "transcript_copy") == []
    with database.read() as session:
        assert session.scalars(select(EncryptedTranscript)).all() == []


def test_group_commands_set_and_show_transcripts_and_refuse_a_bad_address(config_path: Path) -> None:
    def ok(*args: str) -> str:
        result = run_in_process(config_path, *args)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode().strip()

    def kept() -> dict[str, tuple[bool, str]]:
        return {g["name"]: (g["transcripts"], g["transcript_address"])
                for g in json_in_process(config_path, "group", "list")}

    ok("group", "add", "Legal", "--address", "legal@example.com", "--transcripts")
    assert ok("group", "edit", "Support", "--transcripts", "--transcript-address", "Closed-Log@Archive.TEST") == \
        "group Support: transcripts on, transcript copies to closed-log@archive.test"
    assert kept() == {"Legal": (True, ""), "Support": (True, "closed-log@archive.test")}
    assert "yes, copy to closed-log@archive.test" in ok("group", "list")
    before = kept()
    for address, refusal in (("nowhere", "transcript address: not a mail address: 'nowhere'"),
                             ("support@example.com", "transcript address: support@example.com is the helpdesk's "
                                                     "own: each copy would open a ticket")):
        result = run_in_process(config_path, "group", "edit", "Support", "--no-transcripts", "--close-notice",
                                "--transcript-address", address)
        assert (result.returncode, result.stderr.decode().splitlines()) == (1, [f"postdesk: {refusal}"])
    assert kept() == before, "nothing changed"
    assert json_in_process(config_path, "group", "list")[1]["close_notice"] is False
    assert ok("group", "edit", "Support", "--no-transcripts", "--transcript-address", "") == \
        "group Support: transcripts off, transcript copies to nobody"
    assert kept()["Support"] == (False, "")


def test_after_the_purge_only_the_link_still_shows_the_conversation_until_its_retention(
        settings: Settings, database: Database, clock: Clock, sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    """The issue's test: a purged ticket's words are in no table, log or outbox row; the link still shows
    them, and answers 404 once `transcripts.retention_days` have passed."""
    caplog.set_level(logging.DEBUG)
    desk, mask = closed_case(settings, database, clock)
    assert OutboxSender(database, settings.relay, settings.smtp.hostname).send_due() >= 3
    (link,) = [mailed_link(m) for m in sink.to(ALICE) if LINK.search(text_of(m))]
    assert [mailed_link(m) for m in sink.to(LOG)] == [link]
    bob = make_mail(sender="bob@customer.test", subject="Invoice", body="Please check the invoice.")
    deliver(database, settings, bob.as_bytes(), Envelope("smtp", "bob@customer.test", (SUPPORT,)))
    with database.read() as session:
        kept = session.scalars(select(Ticket).where(Ticket.mask != mask)).one()
    desk.reply(kept.mask, "Done.", (), Actor(JANE))  # both first mails taught the filter "not spam"
    desk.delete([mask], Actor(JANE))
    clock.now += timedelta(days=settings.scheduler.deleted_retention_days + 1)
    report = desk.purge(Actor())
    assert (report.tickets, report.transcripts) == (1, 0)

    stored = every_stored_byte(database)
    # the search index stores words, each after the one before it in a segment less what they share:
    # a word is looked for whole where nothing before it shares its first letter
    for words in ("violet-quokka-7719", "violet", "amber-pelican-5521", "amber", "pelican", "cobalt", "walru"):
        assert words.encode() not in stored, f"{words} is still in the database"
    for form in forms_of(link):
        assert form not in stored, "the key left the database with the close notice"
    with database.read() as session:
        assert set(session.scalars(select(OutboxItem.ticket_id))) == {kept.id}, "the ticket's mail went with it"
        taught = {token: ham for token, ham in session.execute(
            select(SpamToken.token, SpamToken.ham).where(SpamToken.token.in_(["check", "invoice", "ledger"])))}
    assert taught == {"check": 1, "invoice": 1}, "what Bob's mail taught stays"
    # every record but the test smarthost's (aiosmtpd's mail.log: the relay, another server, logs what it is sent)
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.name != "mail.log")
    assert "outcome=relayed" in logged, "postdesk's own records are read"
    for secret in ("quokka", "pelican", "walrus", link.fragment):
        assert secret not in logged, f"{secret} was logged"

    client = TestClient(create_app(desk))
    page = client.get(f"/transcripts/{link.public_id}")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert PHRASE in decrypt(database, link), "the link still shows the conversation"
    assert f'data-id="{link.public_id}"' in page.text and "quokka" not in page.text

    clock.now += timedelta(days=settings.transcripts.retention_days)
    assert desk.purge(Actor(), dry_run=True).transcripts == 1
    gone = client.get(f"/transcripts/{link.public_id}")
    nowhere = client.get("/no/such/path")
    assert (gone.status_code, gone.text) == (nowhere.status_code, nowhere.text) == (404, "Not Found"), \
        "past its retention, before any purge"
    assert desk.purge(Actor()).transcripts == 1
    with database.read() as session:
        assert session.scalars(select(EncryptedTranscript)).all() == []
    assert client.get(f"/transcripts/{link.public_id}").status_code == 404
