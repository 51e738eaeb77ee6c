"""How the spool runner ends each mail: a named FilingOutcome, the step that decided it, one log line once committed."""

from __future__ import annotations

import logging
import re

import pytest

from core.db import Database
from core.inbound import Envelope
from core.pipeline import FilingOutcome
from core.settings import Settings
from mailgate.runner import SpoolRunner
from mailgate.spool import spool_messages
from testkit import make_mail

LINE = re.compile(r"^mail (?P<id>\S+) outcome=(?P<outcome>\w+) mask=(?P<mask>\S+) step=(?P<step>.+) ms=(?P<ms>\d+)$")
pytestmark = pytest.mark.sqlite_only  # the outcome and its line are the same on either database

SMTP_ENVELOPE = Envelope("smtp", "alice@customer.test", ("support@example.com",))


def mail_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    """The per-mail lines the runner logged, as their fields."""
    found = (LINE.match(r.getMessage()) for r in caplog.records if r.name == "mailgate.runner")
    return [m.groupdict() for m in found if m]


def test_each_mail_ends_in_a_named_outcome_logged_with_its_step(database: Database, settings: Settings,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    first = make_mail(message_id="<first@customer.test>").as_bytes()
    unparseable = b"\r\n\r\nno header at all\r\n"
    spool_messages(database, [(first, SMTP_ENVELOPE), (first, SMTP_ENVELOPE), (unparseable, SMTP_ENVELOPE)])
    caplog.set_level(logging.INFO, "mailgate.runner")
    stats = SpoolRunner(database, settings, log_each_mail=True).drain()

    assert (stats.filed, stats.duplicates, stats.quarantined) == (1, 1, 1)
    opened, duplicate, quarantined = mail_lines(caplog)
    assert (opened["id"], opened["outcome"], opened["step"]) == ("<first@customer.test>", FilingOutcome.OPENED, "store")
    assert re.fullmatch(r"[A-Z]{3}-\d{5}-\d{3}", opened["mask"]), opened
    assert (duplicate["id"], duplicate["outcome"], duplicate["mask"], duplicate["step"]) == (
        "<first@customer.test>", FilingOutcome.DUPLICATE, "-", "skip_duplicate")
    assert (quarantined["id"], quarantined["outcome"], quarantined["mask"], quarantined["step"]) == (
        "-", FilingOutcome.QUARANTINED, "-", "parse")


def test_a_follow_up_names_the_ticket_it_joined(database: Database, settings: Settings,
                                               caplog: pytest.LogCaptureFixture) -> None:
    first = make_mail(message_id="<start@customer.test>")
    runner = SpoolRunner(database, settings, log_each_mail=True)
    caplog.set_level(logging.INFO, "mailgate.runner")
    spool_messages(database, [(first.as_bytes(), SMTP_ENVELOPE)])
    runner.drain()
    follow_up = make_mail(subject="Re: Printer on fire", message_id="<next@customer.test>",
                          in_reply_to="<start@customer.test>", references="<start@customer.test>")
    spool_messages(database, [(follow_up.as_bytes(), SMTP_ENVELOPE)])
    runner.drain()
    opened, joined = mail_lines(caplog)
    assert joined["id"] == "<next@customer.test>" and joined["mask"] == opened["mask"]
    assert joined["outcome"] in (FilingOutcome.APPENDED, FilingOutcome.UNVERIFIED_SENDER) and joined["step"] == "store"


def test_a_runner_outside_the_daemon_files_without_a_line_per_mail(database: Database, settings: Settings,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """`postdesk import` of thousands of mails prints its totals, not a line for each."""
    spool_messages(database, [(make_mail().as_bytes(), SMTP_ENVELOPE)])
    caplog.set_level(logging.INFO, "mailgate.runner")
    assert SpoolRunner(database, settings).drain().filed == 1
    assert mail_lines(caplog) == []
