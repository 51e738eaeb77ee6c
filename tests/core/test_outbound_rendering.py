"""Each mail is text and HTML from one render call; what a customer typed is escaped in HTML, verbatim in text."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from importlib.resources import files

import pytest
from sqlalchemy import select

from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import OutboxItem
from core.settings import Settings
from core.staff import add_group, add_worker
from mailgate.deliver import deliver
from testkit import make_mail

DESK = "desk@example.com"
WORKER = "jane@corp.test"
SCRIPT = "<script>alert('x')</script>"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"


@pytest.fixture
def desk(database: Database, settings: Settings) -> Database:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_group(session, "Desk", DESK, auto_reply=True, close_notice=True)
        add_worker(session, WORKER, "Jane Doe", ["Desk"])
    return database


def send(database: Database, settings: Settings, mail: EmailMessage, mail_from: str) -> None:
    deliver(database, settings, mail.as_bytes(), Envelope("smtp", mail_from, (DESK,)))


def parts(database: Database, purpose: str) -> list[tuple[str, str]]:
    """(text part, HTML part) of each queued mail of this purpose."""
    with database.read() as session:
        raws = session.scalars(select(OutboxItem.raw).where(OutboxItem.purpose == purpose)
                               .order_by(OutboxItem.id)).all()
    found = []
    for raw in raws:
        mail = message_from_bytes(raw, policy=default)
        assert mail.get_content_type() in ("multipart/alternative", "multipart/mixed")
        text, html = mail.get_body(("plain",)), mail.get_body(("html",))
        assert text is not None and html is not None
        found.append((text.get_content(), html.get_content()))
    return found


def test_every_template_has_a_text_and_an_html_version() -> None:
    names = {entry.name for entry in files("templates").iterdir()}
    texts = {name.removesuffix(".txt.j2") for name in names if name.endswith(".txt.j2")}
    htmls = {name.removesuffix(".html.j2") for name in names if name.endswith(".html.j2") and name[0] != "_"}
    assert texts and texts == htmls


@pytest.mark.sqlite_only
def test_a_customers_markup_is_escaped_in_html_and_verbatim_in_text(desk: Database, settings: Settings) -> None:
    send(desk, settings, make_mail(sender="Alice <alice@customer.test>", to=DESK, subject=f"Help {SCRIPT}",
                                   body=f"My printer says {SCRIPT}"), "alice@customer.test")
    ((text, html),) = parts(desk, "notification")
    assert f"My printer says {SCRIPT}" in text
    assert f"My printer says {ESCAPED}" in html and "<script" not in html


@pytest.mark.sqlite_only
def test_the_close_notice_escapes_subject_and_transcript_in_html(desk: Database, settings: Settings) -> None:
    send(desk, settings, make_mail(sender="Alice <alice@customer.test>", to=DESK, subject=f"Help {SCRIPT}",
                                   body=f"It shows {SCRIPT}"), "alice@customer.test")
    with desk.read() as session:
        note = message_from_bytes(session.scalars(select(OutboxItem.raw)
                                                  .where(OutboxItem.purpose == "notification")).one(), policy=default)
    send(desk, settings, make_mail(sender=WORKER, to=DESK, in_reply_to=str(note["Message-ID"]),
                                   body="#close\nUse <b>Reset</b> & it works."), WORKER)
    ((reply_text, reply_html),) = parts(desk, "reply")
    assert "Use <b>Reset</b> & it works." in reply_text
    assert "Use &lt;b&gt;Reset&lt;/b&gt; &amp; it works." in reply_html
    ((text, html),) = parts(desk, "close_notice")
    assert f'"Help {SCRIPT}"' in text and f"It shows {SCRIPT}" in text
    assert f"Help {ESCAPED}" in html and f"It shows {ESCAPED}" in html and "<script" not in html
    assert "Use &lt;b&gt;Reset&lt;/b&gt;" in html
