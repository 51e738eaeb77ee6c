"""A group writes in its language; an installation's own templates win over the shipped ones (issue 13, item 8)."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from core.errors import ConfigError, UsageError
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.lifecycle import close_ticket
from core.models import OutboxItem, Ticket, utcnow
from core.notify import Outbound
from core.settings import Settings, load_settings
from core.staff import add_group, edit_group
from mailgate.deliver import deliver
from testkit import make_mail

ACCUEIL = "accueil@example.com"


def sent(database: Database, purpose: str) -> list[tuple[str, str, str]]:
    """(subject, text part, HTML part) of each mail queued for this purpose."""
    with database.read() as session:
        raws = session.scalars(select(OutboxItem.raw).where(OutboxItem.purpose == purpose).order_by(OutboxItem.id))
        mails = [message_from_bytes(raw, policy=default) for raw in raws]
    return [(str(m["Subject"]), m.get_body(("plain",)).get_content(), m.get_body(("html",)).get_content())
            for m in mails]


def write_in(database: Database, settings: Settings, to: str, sender: str = "amelie@client.test") -> None:
    mail = make_mail(sender=sender, to=to, subject="Imprimante", body="Elle ne marche plus.")
    deliver(database, settings, mail.as_bytes(), Envelope("smtp", sender, (to,)))


@pytest.mark.sqlite_only
def test_a_french_group_greets_and_closes_in_french(database: Database, settings: Settings) -> None:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_group(session, "Accueil", ACCUEIL, auto_reply=True, close_notice=True, language="fr")
    write_in(database, settings, ACCUEIL)
    write_in(database, settings, "support@example.com", "bob@client.test")  # the default group stays English
    with database.write() as session:
        ticket = session.scalars(select(Ticket).order_by(Ticket.id)).first()
        assert ticket is not None
        close_ticket(session, Outbound.from_settings(settings), ticket, actor="jane@corp.test", reason="closed",
                     now=utcnow())
    (french, english) = sent(database, "auto_reply")
    assert french[1].startswith("Bonjour,") and 'lang="fr"' in french[2] and "Bonjour" in french[2]
    assert english[1].startswith("Hello,") and "lang=" not in english[2]
    ((subject, text, html),) = sent(database, "close_notice")
    assert subject.endswith("] Demande close : Imprimante") and "a été close" in text and "a été close" in html


@pytest.mark.sqlite_only
def test_the_installations_templates_win_and_the_rest_fall_back(database: Database, config_path: Path,
                                                               tmp_path: Path) -> None:
    own = tmp_path / "our-templates"
    own.mkdir()
    (own / "auto_reply.txt.j2").write_text("Thanks! Ref {{ mask }}, {{ group }} desk.\n")
    (own / "auto_reply.html.j2").write_text("<p>Thanks! Ref {{ mask }}</p>\n")
    config_path.write_text(config_path.read_text() + '\n[templates]\nfolder = "our-templates"\n')
    settings = load_settings(config_path)
    assert settings.templates.folder == str(own)
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        edit_group(session, "Support", close_notice=True)
    write_in(database, settings, "support@example.com")
    ((_, text, html),) = sent(database, "auto_reply")
    assert text.startswith("Thanks! Ref ") and html.startswith("<p>Thanks! Ref ")
    with database.write() as session:
        ticket = session.scalars(select(Ticket)).one()
        close_ticket(session, Outbound.from_settings(settings), ticket, actor="x", reason="closed", now=utcnow())
    ((subject, text, _),) = sent(database, "close_notice")  # not in the folder: the shipped one
    assert subject.endswith("] Closed: Imprimante") and text.startswith("Hello,")


def test_a_missing_templates_folder_or_a_bad_language_is_refused(config_path: Path, database: Database,
                                                                  settings: Settings) -> None:
    config_path.write_text(config_path.read_text() + '\n[templates]\nfolder = "nowhere"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config_path)
    assert raised.value.key == "templates.folder"
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        with pytest.raises(UsageError, match="not a language code"):
            edit_group(session, "Support", language="fr_FR; drop")
        assert edit_group(session, "Support", language="FR").language == "fr"
        assert edit_group(session, "Support", language="en").language == ""
