"""The daemon's answers and log lines per mail: refusals from the error types, one INFO line per mail's end."""

from __future__ import annotations

import re

import pytest

from core.errors import MessageTooLarge, RecipientRefused
from testkit import Daemon, Sink, make_mail, wait_for

pytestmark = pytest.mark.sqlite_only  # SMTP answers and log lines: no database difference

LINE = re.compile(r"mail (?P<id>\S+) outcome=(?P<outcome>\w+) mask=(?P<mask>\S+)(?: step=(?P<step>\S+))? ms=\d+")


def logged(daemon: Daemon, outcome: str, count: int = 1) -> list[dict[str, str]]:
    """Wait until the daemon's log holds `count` per-mail lines with this outcome; returns their fields."""
    def lines() -> list[dict[str, str]]:
        found = [m.groupdict() for m in LINE.finditer(daemon.log.read_text())]
        return [f for f in found if f["outcome"] == outcome]
    lines.__name__ = f"{count} {outcome} lines in the daemon's log"
    wait_for(lambda: len(lines()) >= count)
    return lines()


def said(code: int, text: bytes) -> str:
    return f"{code} {text.decode()}"


def test_refusals_are_the_error_types_own_replies(daemon: Daemon) -> None:
    limit = daemon.settings.smtp.max_message_size
    too_large = MessageTooLarge(None, limit).smtp_reply
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("spammer@outside.test")
        assert said(*client.rcpt("victim@elsewhere.test")) == RecipientRefused("victim@elsewhere.test").smtp_reply
        client.rset()
        assert said(*client.mail("customer@outside.test", [f"SIZE={limit + 1}"])) == too_large
        client.rset()
        client.mail("customer@outside.test")  # no SIZE said: the server counts while it reads
        client.rcpt("support@example.com")
        big = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * (limit // 78 + 2)
        assert said(*client.data(big)) == too_large
    assert [line["step"] for line in logged(daemon, "refused", 3)] == ["RCPT", "MAIL", "DATA"]


def test_filed_and_relayed_mail_each_make_one_line(daemon: Daemon, sink: Sink) -> None:
    daemon.send(make_mail(message_id="<one@customer.test>").as_bytes())
    (opened,) = logged(daemon, "opened")
    assert (opened["id"], opened["step"]) == ("<one@customer.test>", "store")
    (relayed,) = logged(daemon, "relayed")
    (acknowledgement,) = sink.mails()  # of the new ticket: the one mail the helpdesk wrote
    assert (relayed["id"], relayed["mask"]) == (acknowledgement["Message-ID"], opened["mask"])
