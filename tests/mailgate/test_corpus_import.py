"""Real-world mail from ../shared/corpora: each message ends as a ticket message or in quarantine.

`postdesk import` reads every message of the corpora (SQLite; a smaller run over mail/ on
PostgreSQL), and the messages that make Python's own email parser or mail-parser raise go through
the real SMTP daemon. The import's counts are checked against what mail_sources reads and what
parse_message says of each message, so a lost, doubled or wrongly merged message fails the test.
"""

from __future__ import annotations

import collections
import email
import email.policy
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import open_database
from core.errors import UnparseableMessage
from core.inbound import Envelope
from core.models import Message, QuarantineItem, SpoolItem
from mailgate.importer import IMPORT_ENVELOPE
from mailgate.mail_sources import read_messages
from mailgate.parse import parse_message
from testkit import CORPORA, Daemon, make_mail, run_cli, wait_for, write_config

pytestmark = [pytest.mark.corpus,
              pytest.mark.skipif(not CORPORA.is_dir(), reason=f"no corpora at {CORPORA} (see shared/corpora/README.md)")]

NO_SIZE_LIMIT = str(1024 * 1024 * 1024)
SUMMARY = re.compile(r"read (\d+): filed (\d+), duplicates (\d+), quarantined (\d+), too large (\d+), "
                     r"left for retry (\d+)")

# Each makes email.message_from_bytes(policy=email.policy.default) raise on reading its headers:
# AttributeError on an address group, IndexError in the header parser (whole files or mbox members).
STDLIB_BREAKERS = ("mail/mimekit-testdata/messages/delivery-status.txt",
                   "mail/mimekit-testdata/messages/delivery-status-no-blank-line.txt",
                   "mail/mimekit-testdata/messages/delivery-status.anonymized.eml",
                   "mail/mimekit-testdata/mbox/content-length.mbox.txt",
                   "mail/rt-emails/emails/outlook-rfc822",
                   "spam/spamassassin/spam_2/00357.049b1dd678979ce56f10dfa9632127a3")
# mail-parser, postdesk's parser, raises AttributeError on five messages of the last four (a missing
# start boundary): they go to quarantine. The first once made it recurse to death.
PARSER_BREAKERS = ("mail/mimekit-testdata/messages/stack-overflow.txt",
                   "mail/mimekit-testdata/mbox/simple.mbox.txt",
                   "mail/stalwart-mail-parser/malformed/001.eml",
                   "mail/stalwart-mail-parser/malformed/003.eml",
                   "mail/stalwart-mail-parser/malformed/013.eml")


@dataclass
class Expected:
    """What becomes of each message read, from what parse_message says of it, in order.

    Filed under its Message-ID; a duplicate when that id is filed already; quarantined when it is
    unparseable, or a delivery report for mail the helpdesk never sent (here it has sent none).
    """

    read: int = 0
    ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    unparseable: int = 0
    stray_reports: int = 0

    def add(self, raw: bytes, envelope: Envelope) -> None:
        self.read += 1
        try:
            message = parse_message(raw, envelope)
        except UnparseableMessage:
            self.unparseable += 1
            return
        if message.message_id in self.ids:
            self.duplicates += 1
        elif message.bounce is not None:
            self.stray_reports += 1
        else:
            self.ids.add(message.message_id)

    @property
    def quarantined(self) -> int:
        return self.unparseable + self.stray_reports


def expected_outcomes(source: Path) -> Expected:
    expected = Expected()
    for message in read_messages(source):
        expected.add(message.raw, IMPORT_ENVELOPE)
    return expected


def import_and_check(tmp_path: Path, db_url: str, source: Path) -> None:
    expected = expected_outcomes(source)
    config = write_config(tmp_path, db_url, max_message_size=NO_SIZE_LIMIT)
    started = time.monotonic()
    result = run_cli(config, "import", str(source))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert b"Traceback" not in result.stderr
    match = SUMMARY.search(result.stdout.decode())
    assert match, result.stdout.decode()
    read, filed, duplicates, quarantined, too_large, left = map(int, match.groups())
    assert read == expected.read
    assert (too_large, left) == (0, 0)
    assert filed + duplicates + quarantined == read
    assert (filed, duplicates, quarantined) == (len(expected.ids), expected.duplicates, expected.quarantined)
    reasons = check_database(db_url, expected)
    print(f"\n{source}: read {read}, filed {filed}, duplicates {duplicates}, quarantined {quarantined} "
          f"in {elapsed:.0f}s")
    for reason, count in reasons.most_common():
        print(f"  {count:5d}  {reason}")


def check_database(db_url: str, expected: Expected) -> collections.Counter[str]:
    """Spool empty, each distinct Message-ID stored once, each quarantined mail with its reason."""
    db = open_database(db_url)
    try:
        with db.read() as session:
            assert session.scalar(select(func.count()).select_from(SpoolItem)) == 0
            stored = list(session.scalars(select(Message.message_id)))
            reasons = list(session.scalars(select(QuarantineItem.reason)))
    finally:
        db.dispose()
    assert len(stored) == len(set(stored)) and set(stored) == expected.ids
    unparseable = [r for r in reasons if r.startswith("unparseable: ") and len(r) > len("unparseable: ")]
    assert len(unparseable) == expected.unparseable
    assert reasons.count("delivery report for mail the helpdesk did not send") == expected.stray_reports
    assert len(reasons) == expected.quarantined
    return collections.Counter(r.split(" (")[0][:90] for r in reasons)


def test_every_corpus_message_is_filed_or_quarantined(tmp_path: Path) -> None:
    """The whole corpora on SQLite (about 7,700 messages, a minute or two)."""
    import_and_check(tmp_path, f"sqlite:///{tmp_path / 'corpus.db'}", CORPORA)


@pytest.mark.postgres
def test_odd_mail_is_filed_or_quarantined_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    """mail/ only: the odd and malformed messages, where NUL bytes and bad text would show."""
    import_and_check(tmp_path, postgres_url, CORPORA / "mail")


def stdlib_raises(raw: bytes) -> bool:
    try:
        for part in email.message_from_bytes(raw, policy=email.policy.default).walk():
            for _, value in part.items():
                str(value)
    except Exception:
        return True
    return False


def as_sent(raw: bytes) -> bytes:
    """The bytes an MTA sends: CRLF line ends, ending in CRLF."""
    crlf = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    return crlf if crlf.endswith(b"\r\n") else crlf + b"\r\n"


def parser_breakers() -> list[bytes]:
    found = [m.raw for path in STDLIB_BREAKERS for m in read_messages(CORPORA / path) if stdlib_raises(m.raw)]
    assert len(found) >= len(STDLIB_BREAKERS), "each listed source makes the stdlib parser raise"
    found += [m.raw for path in PARSER_BREAKERS for m in read_messages(CORPORA / path)]
    return [as_sent(raw) for raw in found]


def test_mail_that_breaks_email_parsers_through_the_daemon(daemon: Daemon) -> None:
    sender, to = "customer@outside.test", ("support@example.com",)
    mails = parser_breakers()
    for raw in mails:
        daemon.send(raw, to=to, sender=sender)
    daemon.send(make_mail(subject="Still answering?").as_bytes(), to=to, sender=sender)
    expected = Expected()
    for raw in mails:
        expected.add(raw, Envelope("smtp", sender, to))
    db = open_database(daemon.settings.database.url)
    try:
        def everything_filed() -> bool:
            with db.read() as session:
                spooled = session.scalar(select(func.count()).select_from(SpoolItem))
                held = session.scalar(select(func.count()).select_from(QuarantineItem))
                stored = set(session.scalars(select(Message.message_id)))
            return spooled == 0 and len(stored) == len(expected.ids) + 1 and held == expected.quarantined

        wait_for(everything_filed, timeout=60)
        with db.read() as session:
            stored = set(session.scalars(select(Message.message_id)))
            subjects = set(session.scalars(select(Message.subject)))
    finally:
        db.dispose()
    assert expected.ids <= stored
    assert "Still answering?" in subjects
    assert daemon.process is not None and daemon.process.poll() is None
