"""Real-world mail from ../shared/corpora: each message ends as a ticket message or in quarantine.

`postdesk import` reads every message of the corpora (SQLite; a smaller run over mail/ on
PostgreSQL), and the messages that make Python's own email parser or mail-parser raise go through
the real SMTP daemon. The import's counts are checked against what mail_sources reads and what
parse_message says of each message, so a lost, doubled or wrongly merged message fails the test.
No filed text shows U+FFFD or a C1 control unless the mail's bytes carry it (a misread charset
leaves those), and the figures of those that do are printed.
"""

from __future__ import annotations

import codecs
import collections
import email
import email.policy
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.header import decode_header
from pathlib import Path
from typing import TypeVar

import pytest
from charset_normalizer import from_bytes
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import open_database
from core.errors import UnparseableMessage
from core.inbound import Envelope
from core.models import AddressRow, Attachment, Message, QuarantineItem, SpoolItem
from core.pipeline import reused_id_key
from core.tickets import content_digest
from mailgate.importer import IMPORT_ENVELOPE
from mailgate.mail_sources import read_messages
from mailgate.parse import parse_message
from testkit import CORPORA, ROOT, Daemon, make_mail, wait_for, write_config

pytestmark = [pytest.mark.corpus,
              pytest.mark.skipif(not CORPORA.is_dir(), reason=f"no corpora at {CORPORA} (see shared/corpora/README.md)")]

NO_SIZE_LIMIT = str(1024 * 1024 * 1024)
IMPORT_TIMEOUT_SECONDS = 300
T = TypeVar("T")
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

    Filed under its Message-ID; a duplicate when that id is filed already with the same mail; quarantined when it is
    unparseable, or a delivery report for mail the helpdesk never sent (here it has sent none).
    """

    read: int = 0
    ids: set[str] = field(default_factory=set)
    digests: dict[str, str] = field(default_factory=dict)
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
        # core.pipeline.skip_duplicate: the same id and the same mail; another mail under a used id
        # is filed under a key of its own
        digest = content_digest(message)
        key = message.message_id
        if key in self.ids and self.digests[key] != digest:
            key = reused_id_key(key, digest)
        if key in self.ids:
            self.duplicates += 1
        elif message.bounce is not None:
            self.stray_reports += 1
        else:
            self.ids.add(key)
            self.digests[key] = digest

    @property
    def quarantined(self) -> int:
        return self.unparseable + self.stray_reports


def expected_outcomes(source: Path) -> Expected:
    expected = Expected()
    for message in read_messages(source):
        expected.add(message.raw, IMPORT_ENVELOPE)
    return expected


def import_and_check(tmp_path: Path, db_url: str, source: Path) -> None:
    config = write_config(tmp_path, db_url, max_message_size=NO_SIZE_LIMIT)
    started = time.monotonic()
    result, expected = import_meanwhile(config, source, lambda: expected_outcomes(source))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert b"Traceback" not in result.stderr
    carried = check_text_as_written(db_url)
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
    print(f"  filed messages whose texts show what their bytes carry: {dict(carried) or 'none'}")


def import_meanwhile(config: Path, source: Path,
                     work: Callable[[], T]) -> tuple[subprocess.CompletedProcess[bytes], T]:
    """`postdesk import` as a whole process while `work` runs here: the test's own reading of every message
    takes the other core instead of adding its minute. Output goes to files, which never fill as a pipe would."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([sys.executable, "-m", "workers", "--config", str(config), "import", str(source)],
                                   stdout=stdout, stderr=stderr, cwd=ROOT)
        try:
            done = work()
            process.wait(timeout=IMPORT_TIMEOUT_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stdout.seek(0)
        stderr.seek(0)
        return subprocess.CompletedProcess(process.args, process.returncode, stdout.read(), stderr.read()), done


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


MISREAD = re.compile("[\ufffd\x80-\x9f]")  # U+FFFD and the C1 controls: what a misread charset leaves
UTF8_REPLACEMENT = "\ufffd".encode()
UTF8_C1 = re.compile(rb"\xc2[\x80-\x9f]")
C1_BYTES = re.compile(rb"[\x80-\x9f]")


def check_text_as_written(db_url: str) -> collections.Counter[str]:
    """No filed text (subject, text, HTML, sender name, file names) shows U+FFFD or a C1 control that
    its mail's bytes do not carry; returns how many messages show each that their bytes do carry."""
    db = open_database(db_url)
    try:
        with db.read() as session:
            shown = {message_id: kinds for message_id, kinds in shown_misreads(session).items() if kinds}
            raws = dict(session.execute(select(Message.id, Message.raw).where(Message.id.in_(shown))).tuples().all())
    finally:
        db.dispose()
    not_carried = {raws[i][:200]: kinds - carried_by(raws[i]) for i, kinds in shown.items()}
    assert not {head: kinds for head, kinds in not_carried.items() if kinds}
    return collections.Counter(kind for kinds in shown.values() for kind in kinds)


def shown_misreads(session: Session) -> dict[int, set[str]]:
    """For each filed message, which of U+FFFD and C1 controls its texts show."""
    shown: dict[int, set[str]] = collections.defaultdict(set)
    rows = session.execute(select(Message.id, Message.subject, Message.text, Message.html, AddressRow.name)
                           .join(AddressRow, Message.sender_id == AddressRow.id)).tuples()
    names = session.execute(select(Attachment.message_id, Attachment.filename)).tuples()
    for message_id, *texts in [*rows, *names]:
        shown[message_id].update(misreads("".join(texts)))
    return shown


def misreads(text: str) -> set[str]:
    return {"U+FFFD" if char == "\ufffd" else "C1" for char in set(MISREAD.findall(text))}


def carried_by(raw: bytes) -> set[str]:
    """Which of U+FFFD and C1 controls the mail's bytes really carry, in any field or text part."""
    carried = set()
    for data, label in byte_runs(raw):
        if carries_replacement(data, label):
            carried.add("U+FFFD")
        if carries_c1(data):
            carried.add("C1")
    return carried


def byte_runs(raw: bytes) -> Iterator[tuple[bytes, str | None]]:
    """Each run of bytes a filed text is read from, with its charset label: the header fields of the
    mail and its parts, their encoded words and RFC 2231 values, and the text parts."""
    for part in email.message_from_bytes(raw, policy=email.policy.compat32).walk():
        for _, value in part.raw_items():
            yield str(value).encode("utf-8", "surrogateescape"), None
            yield from encoded_words(str(value))
        for header in ("content-type", "content-disposition"):
            for _, param in part.get_params([], header=header):
                if isinstance(param, tuple):  # RFC 2231: (charset, language, the bytes as Latin-1)
                    yield str(param[2]).encode("latin-1", "replace"), param[0]
        payload = part.get_payload(decode=True) if part.get_content_maintype() == "text" else None
        if isinstance(payload, bytes):
            yield payload, part.get_content_charset()


def encoded_words(value: str) -> Iterator[tuple[bytes, str | None]]:
    try:
        chunks = decode_header(value)
    except Exception:  # the stdlib raises anything on broken words: those stay as written
        return
    yield from ((chunk, charset) for chunk, charset in chunks if isinstance(chunk, bytes) and charset)


def carries_replacement(data: bytes, label: str | None) -> bool:
    """U+FFFD written in the bytes, or bytes no reading takes whole: neither UTF-8 nor their label (where
    one of them reads most of the bytes: a damaged text), nor any charset charset-normalizer knows."""
    if UTF8_REPLACEMENT in data:
        return True
    readers = [codec for codec in ("utf-8", codec_of(label)) if codec]
    if any(reads(data, codec) for codec in readers):
        return False
    return any(reads_most(data, codec) for codec in readers) or from_bytes(data).best() is None


def carries_c1(data: bytes) -> bool:
    """A C1 control written in UTF-8, or bytes 0x80-0x9F that neither UTF-8 nor Windows-1252 reads."""
    if UTF8_C1.search(data):
        return True
    return bool(C1_BYTES.search(data)) and not reads(data, "utf-8") and not reads(data, "cp1252")


def codec_of(label: str | None) -> str | None:
    try:
        return codecs.lookup(label.strip().strip('"')).name if label else None
    except (LookupError, ValueError):
        return None


def reads(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except (UnicodeError, LookupError):
        return False
    return True


def reads_most(data: bytes, codec: str) -> bool:
    """More of the non-ASCII characters read than bytes it cannot read."""
    try:
        text = data.decode(codec, "replace")
    except (UnicodeError, LookupError):
        return False
    bad = text.count("\ufffd")
    return len(text) - len(text.encode("ascii", "ignore")) - bad > bad


# Every folder of the corpora, one test each: each stays well under a minute, and they spread over workers.
CORPUS_PARTS = ("mail", "spam/spamassassin/easy_ham", "spam/spamassassin/easy_ham_2", "spam/spamassassin/hard_ham",
                "spam/spamassassin/spam", "spam/spamassassin/spam_2")


@pytest.mark.parametrize("part", CORPUS_PARTS)
def test_every_corpus_message_is_filed_or_quarantined(tmp_path: Path, part: str) -> None:
    """The corpora on SQLite, a folder at a time (about 7,500 messages in all)."""
    import_and_check(tmp_path, f"sqlite:///{tmp_path / 'corpus.db'}", CORPORA / part)


def test_the_corpus_parts_are_the_whole_corpora() -> None:
    """No folder of mail is left out of the parts above."""
    folders = {str(path.parent.relative_to(CORPORA)) for path in CORPORA.rglob("*")
               if path.is_file() and path.parent != CORPORA and path.suffix not in (".md", ".tsv")}
    assert {folder for folder in folders if not folder.startswith(CORPUS_PARTS)} == set()


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
