"""The SMTP gateway, spoken to over real SMTP on 127.0.0.1, with a real `postdesk serve` behind it."""

from __future__ import annotations

import hashlib
import os
import smtplib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select, text

from core.db import Database, open_database
from core.models import Blob, Message, QuarantineItem, SpoolItem
from testkit import Daemon, json_in_process, make_mail, run_in_process, wait_for


@contextmanager
def opened(daemon: Daemon) -> Iterator[Database]:
    db = open_database(daemon.settings.database.url)
    try:
        yield db
    finally:
        db.dispose()


def count(daemon: Daemon, model: type) -> int:
    with opened(daemon) as db, db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def one_ticket(daemon: Daemon, messages: int = 1) -> dict:
    def ready() -> dict | None:
        rows = json_in_process(daemon.config, "tickets", "--status", "all")
        return rows[0] if len(rows) == 1 and rows[0]["message_count"] == messages else None
    ready.__name__ = f"one ticket with {messages} messages"
    return wait_for(ready)  # type: ignore[return-value]


@pytest.mark.sqlite_only
def test_follow_ups_over_smtp_by_mask_and_references(daemon: Daemon) -> None:
    first = make_mail()
    daemon.send(first.as_bytes())
    mask = one_ticket(daemon)["mask"]
    daemon.send(make_mail(subject=f"Re: [{mask}] Printer on fire", body="by mask").as_bytes())
    one_ticket(daemon, 2)
    daemon.send(make_mail(subject="different", references=first["Message-ID"], body="by refs").as_bytes())
    shown = json_in_process(daemon.config, "show", one_ticket(daemon, 3)["mask"])
    assert [m["text"].strip() for m in shown["messages"]] == ["Help, please.", "by mask", "by refs"]


@pytest.mark.sqlite_only
def test_unknown_mask_opens_a_new_ticket(daemon: Daemon) -> None:
    daemon.send(make_mail(subject="Re: [QQQ-00000-000] old thread").as_bytes())
    ticket = one_ticket(daemon)
    assert ticket["mask"] != "QQQ-00000-000" and ticket["subject"] == "Re: [QQQ-00000-000] old thread"


def test_duplicate_message_id_is_acknowledged_and_stored_once(daemon: Daemon) -> None:
    raw = make_mail(message_id="<dup@customer.test>").as_bytes()
    daemon.send(raw)
    daemon.send(raw)
    wait_for(lambda: count(daemon, SpoolItem) == 0 and count(daemon, Message) == 1)
    time.sleep(0.2)
    assert count(daemon, Message) == 1


@pytest.mark.sqlite_only
def test_never_an_open_relay(daemon: Daemon) -> None:
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("spammer@outside.test")
        code, reply = client.rcpt("victim@elsewhere.test")
        assert code == 550 and b"5.1.1" in reply
        assert client.rcpt("help@other.test")[0] == 250  # a single accepted address at another domain
        assert client.rcpt("Anyone@EXAMPLE.com")[0] == 250  # any address at an accepted domain
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        daemon.send(make_mail().as_bytes(), to=("victim@elsewhere.test",))
    assert count(daemon, SpoolItem) + count(daemon, Message) == 0


@pytest.mark.sqlite_only
def test_oversize_mail_is_refused_with_552(daemon: Daemon) -> None:
    big = make_mail(attachments=[("big.bin", "application/octet-stream", os.urandom(1_200_000))])
    with pytest.raises(smtplib.SMTPException) as refused:
        daemon.send(big.as_bytes())
    assert "552" in str(refused.value)
    daemon.send(make_mail().as_bytes())  # the gateway still works afterwards
    one_ticket(daemon)
    assert count(daemon, Message) == 1


def test_unparseable_mail_is_quarantined_with_reason(daemon: Daemon) -> None:
    daemon.send(b"\r\n\r\nno header at all, just a body\r\n")
    wait_for(lambda: count(daemon, QuarantineItem) == 1)
    listed = json_in_process(daemon.config, "quarantine", "list")
    assert len(listed) == 1 and listed[0]["reason"] and listed[0]["mail_from"] == "customer@outside.test"
    with opened(daemon) as db, db.read() as session:
        assert session.scalars(select(QuarantineItem.raw)).one() == b"\r\n\r\nno header at all, just a body\r\n"
    plain = run_in_process(daemon.config, "quarantine", "list")
    assert plain.returncode == 0 and b"customer@outside.test" in plain.stdout


CHARSETS = [
    ("iso-8859-1", "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e", "Fa\u00e7ade d\u00e9j\u00e0 vu"),
    ("koi8-r", "\u041f\u0440\u0438\u043d\u0442\u0435\u0440 \u0433\u043e\u0440\u0438\u0442", "\u041f\u043e\u043c\u043e\u0433\u0438\u0442\u0435"),
    ("shift_jis", "\u30d7\u30ea\u30f3\u30bf\u30fc\u304c\u71c3\u3048\u3066\u3044\u307e\u3059", "\u52a9\u3051\u3066\u304f\u3060\u3055\u3044"),
    ("gb18030", "\u6253\u5370\u673a\u7740\u706b\u4e86", "\u8bf7\u5e2e\u5fd9"),
    ("iso-8859-7", "\u0395\u03ba\u03c4\u03c5\u03c0\u03c9\u03c4\u03ae\u03c2", "\u0392\u03bf\u03ae\u03b8\u03b5\u03b9\u03b1"),
    ("utf-8", "Emoji \U0001f525 and \u00fcml\u00e4uts", "\u0161\u010d\u0159\u017e\u00fd \U0001f9ef"),
]


def test_non_ascii_subjects_and_bodies_in_several_charsets(daemon: Daemon) -> None:
    for charset, subject, body in CHARSETS:
        mail = make_mail(subject=subject, body=body, charset=charset)
        daemon.send(mail.as_bytes())
    wait_for(lambda: count(daemon, Message) == len(CHARSETS))
    stored = {t["subject"]: t["mask"] for t in json_in_process(daemon.config, "tickets")}
    for charset, subject, body in CHARSETS:
        assert subject in stored, f"{charset} subject lost: {sorted(stored)}"
        assert json_in_process(daemon.config, "show", stored[subject])["messages"][0]["text"].strip() == body


@pytest.mark.sqlite_only
def test_raw_utf8_headers_over_smtputf8(daemon: Daemon) -> None:
    raw = ("From: J\u00fcrgen <j\u00fcrgen@m\u00fcnchen.test>\r\nTo: support@example.com\r\n"
           "Subject: Gr\u00fc\u00dfe aus M\u00fcnchen\r\nMessage-ID: <u8@m\u00fcnchen.test>\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nHall\u00f6chen\r\n").encode("utf-8")
    with daemon.smtp() as client:
        client.ehlo()
        client.sendmail("j\u00fcrgen@m\u00fcnchen.test", ["support@example.com"], raw, mail_options=["SMTPUTF8"])
    ticket = one_ticket(daemon)
    assert ticket["subject"] == "Gr\u00fc\u00dfe aus M\u00fcnchen"
    assert ticket["recipients"] == ["j\u00fcrgen@xn--mnchen-3ya.test"]


def test_attachments_round_trip_byte_for_byte(daemon: Daemon) -> None:
    binary = os.urandom(300_000)
    latin1 = "Gr\u00fc\u00dfe\r\nline two without final newline".encode("latin-1")
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 10
    files = [("random.bin", "application/octet-stream", binary), ("notes.txt", "text/plain", latin1),
             ("r\u00e9sum\u00e9.pdf", "application/pdf", pdf)]
    daemon.send(make_mail(attachments=files).as_bytes())
    daemon.send(make_mail(attachments=[files[0]]).as_bytes())  # the same content again: stored once
    wait_for(lambda: count(daemon, Message) == 2)
    first = [t for t in json_in_process(daemon.config, "tickets") if True]
    shown = [json_in_process(daemon.config, "show", t["mask"]) for t in first]
    listed = {a["filename"]: a for s in shown for m in s["messages"] for a in m["attachments"]}
    assert set(listed) == {"random.bin", "notes.txt", "r\u00e9sum\u00e9.pdf"}
    with opened(daemon) as db, db.read() as session:
        for filename, _, data in files:
            blob = session.get(Blob, listed[filename]["sha256"])
            assert blob is not None and blob.data == data and blob.size == len(data)
        assert session.scalar(select(func.count()).select_from(Blob)) == 3
    assert listed["random.bin"]["sha256"] == hashlib.sha256(binary).hexdigest()


@pytest.mark.sqlite_only
def test_restart_keeps_everything(daemon: Daemon) -> None:
    daemon.send(make_mail(attachments=[("a.bin", "application/octet-stream", b"\x00\x01\x02")]).as_bytes())
    before = one_ticket(daemon)
    assert daemon.stop() == 0
    daemon.start()
    after = one_ticket(daemon)
    assert after == before
    daemon.send(make_mail(subject=f"Re: [{before['mask']}]", body="after restart").as_bytes())
    assert one_ticket(daemon, 2)["mask"] == before["mask"]


@pytest.mark.sqlite_only
def test_sigterm_finishes_a_session_in_flight(daemon: Daemon) -> None:
    raw = make_mail(subject="sent across a shutdown").as_bytes()
    client = daemon.smtp()
    client.ehlo()
    client.mail("customer@outside.test")
    client.rcpt("support@example.com")
    client.putcmd("data")
    assert client.getreply()[0] == 354
    client.send(raw[:200])
    assert daemon.process is not None
    daemon.process.send_signal(15)
    time.sleep(0.5)
    assert daemon.process.poll() is None, "the daemon quit with a transaction in flight"
    client.send(raw[200:] + b"\r\n.\r\n")
    code, reply = client.getreply()
    assert code == 250, reply
    client.close()
    assert daemon.process.wait(30) == 0
    daemon.process = None
    daemon.start()
    assert one_ticket(daemon)["subject"] == "sent across a shutdown"


def _break_spool_inserts(db: Database) -> None:
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.execute(text("CREATE TRIGGER refuse_spool BEFORE INSERT ON spool "
                              "BEGIN SELECT RAISE(ABORT, 'storage failure for the test'); END"))
        else:
            conn.execute(text("ALTER TABLE spool ADD CONSTRAINT refuse_spool CHECK (false) NOT VALID"))


def _mend_spool_inserts(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_spool" if db.is_sqlite
                          else "ALTER TABLE spool DROP CONSTRAINT refuse_spool"))


def test_storage_failure_answers_451_and_the_retry_is_stored(daemon: Daemon) -> None:
    raw = make_mail(subject="retried by the sender").as_bytes()
    with opened(daemon) as db:
        _break_spool_inserts(db)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            daemon.send(raw)
        assert refused.value.smtp_code == 451
        _mend_spool_inserts(db)
    daemon.send(raw)
    assert one_ticket(daemon)["subject"] == "retried by the sender"


def test_a_slow_commit_does_not_stall_other_sessions(daemon: Daemon) -> None:
    """While one session waits for its commit, others still get answers from the event loop."""
    with opened(daemon) as db:
        blocker = db.engine.raw_connection()
        cursor = blocker.cursor()
        # hold a lock that the spool insert must wait for
        cursor.execute("BEGIN IMMEDIATE" if db.is_sqlite else "LOCK TABLE spool IN EXCLUSIVE MODE")
        results: list[object] = []
        sender = threading.Thread(target=lambda: results.append(daemon.send(make_mail().as_bytes())))
        sender.start()
        time.sleep(0.5)
        assert sender.is_alive(), "the message was acknowledged while the database was locked"
        with daemon.smtp() as other:
            assert other.ehlo()[0] == 250
            assert other.noop()[0] == 250
        blocker.rollback()
        blocker.close()
        sender.join(30)
    assert results == [None]
    one_ticket(daemon)
