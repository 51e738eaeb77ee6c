"""IMAP polling against a real Dovecot: mailbox mail becomes tickets through the spool, once, whatever fails."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db import Database, open_database
from core.errors import MailboxUnavailable
from core.models import ImapImport, Message, Ticket
from core.schema import upgrade
from core.settings import ImapSettings, Settings, load_settings
from dovecot import PASSWORD, USER, CuttingProxy, Dovecot, dovecot, dovecot_tls  # noqa: F401  (fixtures)
from mailgate.imap_poller import ImapPoller
from mailgate.runner import SpoolRunner
from testkit import Daemon, Sink, json_in_process, make_mail, run_in_process, wait_for, write_config

WORKER = "jane@corp.test"


def account(port: int, **overrides: Any) -> dict[str, Any]:
    """An [[imap]] entry for the test Dovecot (or a proxy in front of it), retrying fast."""
    entry = {"name": "support-box", "host": "127.0.0.1", "port": port, "security": "none", "user": USER,
             "password": PASSWORD, "move_to": "Done", "retry_initial_seconds": 0.05, "retry_max_seconds": 0.5}
    return entry | overrides


@pytest.fixture
def open_db() -> Iterator[list[Database]]:
    """Databases a test opens, disposed of at its end."""
    opened: list[Database] = []
    yield opened
    for db in opened:
        db.dispose()


def configured(tmp_path: Path, db_url: str, opened: list[Database], *entries: dict[str, Any]) -> tuple[Settings, Database]:
    settings = load_settings(write_config(tmp_path, db_url, imap=entries))
    db = open_database(settings.database.url)
    opened.append(db)
    upgrade(db)
    return settings, db


def filed(db: Database) -> dict[str, int]:
    """Each ticket's subject -> how many messages it holds."""
    with db.read() as session:
        rows = session.execute(select(Ticket.subject, func.count(Message.id))
                               .join(Message, Message.ticket_id == Ticket.id).group_by(Ticket.id, Ticket.subject))
        return {subject: count for subject, count in rows}


def mail(subject: str, **headers: str) -> bytes:
    return make_mail(subject=subject, **headers).as_bytes()


@contextmanager
def polling(db: Database, imap: ImapSettings, **options: Any) -> Iterator[None]:
    """The daemon's poller loop in a thread; it must stop promptly and cleanly when asked."""
    stop = threading.Event()
    thread = threading.Thread(target=ImapPoller(db, imap, **options).run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "the poller did not stop"


def in_folders(server: Dovecot, inbox: int, done: int) -> Any:
    def check() -> bool:
        return server.count("INBOX") == inbox and server.count("Done") == done
    check.__name__ = f"{inbox} in INBOX, {done} in Done"
    return check


@pytest.mark.sqlite_only
def test_mailbox_mail_becomes_tickets_in_a_real_daemon_with_threading_idle_and_notifications(
        tmp_path: Path, db_url: str, dovecot: Dovecot, sink: Sink) -> None:
    broken = account(dovecot.port, name="broken-box", password="not the password")
    config = write_config(tmp_path, db_url, relay_port=sink.port,
                          imap=(account(dovecot.port, idle_seconds=1740, poll_seconds=3600), broken))
    assert run_in_process(config, "worker", "add", WORKER, "--name", "Jane", "--group", "Support").returncode == 0
    dovecot.append(mail("Printer on fire", message_id="<first@customer.test>"))
    daemon = Daemon(config, tmp_path / "daemon.log").start()
    db = open_database(load_settings(config).database.url)
    try:
        wait_for(lambda: filed(db) == {"Printer on fire": 1})
        wait_for(in_folders(dovecot, inbox=0, done=1))
        # Idling now, it would look on its own only in 29 minutes (or an hour): only IDLE brings this in.
        dovecot.append(mail("Re: Printer on fire", in_reply_to="<first@customer.test>",
                            references="<first@customer.test>"))
        wait_for(lambda: filed(db) == {"Printer on fire": 2})
        wait_for(in_folders(dovecot, inbox=0, done=2))
        wait_for(lambda: len(sink.to(WORKER)) >= 2)  # Jane hears of the ticket and the follow-up, as for SMTP mail
        wait_for(lambda: daemon.log.read_text().count("imap broken-box: login refused") >= 2)
    finally:
        db.dispose()
        assert daemon.stop() == 0
    text = daemon.log.read_text()
    assert "waiting with IDLE" in text and "Traceback" not in text


def test_imap_poll_imports_once_then_flags_and_expunges(tmp_path: Path, db_url: str, dovecot: Dovecot,
                                                          open_db: list[Database]) -> None:
    settings, db = configured(tmp_path, db_url, open_db,
                              account(dovecot.port, after_import="expunge", deliver_to="billing@example.com"))
    subjects = [f"Question {n}" for n in range(3)]
    for subject in subjects:
        dovecot.append(mail(subject, to="team@customer.test"))  # Bcc'd: no helpdesk address in the headers
    config = settings.source
    assert config is not None
    assert run_in_process(config, "group", "add", "Billing", "--address", "billing@example.com").returncode == 0
    first = run_in_process(config, "imap", "poll")
    assert first.returncode == 0, first.stderr.decode()
    assert first.stdout.decode().strip() == "support-box: 3 imported, 3 moved or flagged"
    assert dovecot.count("INBOX") == 0
    assert filed(db) == {subject: 1 for subject in subjects}
    assert {ticket["group"] for ticket in json_in_process(config, "tickets")} == {"Billing"}  # deliver_to's group
    again = run_in_process(config, "imap", "poll")
    assert again.stdout.decode().strip() == "support-box: 0 imported, 0 moved or flagged"
    with db.read() as session:
        assert session.scalar(select(func.count()).where(ImapImport.finished_at.is_not(None))) == 3


@pytest.mark.sqlite_only
def test_mail_over_the_size_limit_stays_in_the_mailbox_and_is_said(tmp_path: Path, db_url: str, dovecot: Dovecot,
                                                                     open_db: list[Database]) -> None:
    settings, db = configured(tmp_path, db_url, open_db, account(dovecot.port))
    assert settings.smtp.max_message_size == 1048576
    dovecot.append(make_mail(subject="Huge", attachments=[("dump.bin", "application/octet-stream",
                                                           b"\x00" * 1_200_000)]).as_bytes())
    dovecot.append(mail("Small"))
    config = settings.source
    assert config is not None
    for _ in range(2):  # and again at the next poll: never fetched, moved or lost
        result = run_in_process(config, "imap", "poll")
        assert result.returncode == 0, result.stderr.decode()
        assert "over smtp.max_message_size 1048576: left in the mailbox" in result.stderr.decode()
        assert dovecot.count("INBOX") == 1 and dovecot.count("Done") == 1
    assert result.stdout.decode().strip() == (
        "support-box: 0 imported, 0 moved or flagged, 1 over the size limit left in the mailbox")
    assert filed(db) == {"Small": 1}


@pytest.mark.sqlite_only
def test_a_connection_dropped_mid_fetch_loses_and_duplicates_nothing(
        tmp_path: Path, db_url: str, dovecot: Dovecot, open_db: list[Database], caplog: pytest.LogCaptureFixture) -> None:
    proxy = CuttingProxy(dovecot.port)
    settings, db = configured(tmp_path, db_url, open_db, account(proxy.port))
    subjects = [f"Message {n}" for n in range(5)]
    for subject in subjects:
        dovecot.append(mail(subject))
    # Cut inside the second batch's FETCH answer: the first batch is committed and moved by then.
    proxy.cut_when(b"UID 3 BODY[] {", "down")
    try:
        with polling(db, settings.imap[0], batch_size=2):
            wait_for(in_folders(dovecot, inbox=0, done=5))
    finally:
        proxy.close()
    assert proxy.cuts == 1 and proxy.connections >= 2
    assert any("retrying in" in r.getMessage() for r in caplog.records)
    stats = SpoolRunner(db, settings).drain()
    assert (stats.filed, stats.duplicates) == (5, 0)  # a message spooled twice would file once, and count here
    assert filed(db) == {subject: 1 for subject in subjects}


@pytest.mark.sqlite_only
def test_batches_are_cut_by_size_so_big_mail_is_never_held_many_at_a_time(
        tmp_path: Path, db_url: str, dovecot: Dovecot, open_db: list[Database], caplog: pytest.LogCaptureFixture) -> None:
    settings, db = configured(tmp_path, db_url, open_db, account(dovecot.port))
    caplog.set_level(logging.INFO, "mailgate.imap_poller")
    for n, size in enumerate((40_000, 40_000, 10_000, 10_000, 100_000)):
        dovecot.append(mail(f"Attachment {n}", body="x" * size))
    assert ImapPoller(db, settings.imap[0], batch_bytes=60_000).poll_once().imported == 5
    batches = [r.getMessage() for r in caplog.records if "spooled" in r.getMessage()]
    # 40k | 40k+10k+10k would pass 60k: 40k | 40k 10k | 10k | and the 100k message alone
    assert [int(m.split("spooled ")[1].split()[0]) for m in batches] == [1, 2, 1, 1]
    assert dovecot.count("INBOX") == 0 and dovecot.count("Done") == 5


@pytest.mark.sqlite_only
def test_a_crash_between_commit_and_move_neither_loses_nor_imports_twice(
        tmp_path: Path, db_url: str, dovecot: Dovecot) -> None:
    proxy = CuttingProxy(dovecot.port)
    config = write_config(tmp_path, db_url, imap=(account(proxy.port),))
    # The move never reaches the server, and the server stays out of reach until the crash.
    proxy.cut_when(b"UID MOVE", "up", refuse_after=True)
    dovecot.append(mail("Only once"))
    log = tmp_path / "daemon.log"
    first = Daemon(config, log).start()
    wait_for(lambda: proxy.cuts == 1)
    assert first.process is not None
    first.process.kill()  # committed to the spool, never moved
    first.process.wait(10)
    assert dovecot.count("INBOX") == 1
    proxy.allow()
    second = Daemon(config, log).start()
    db = open_database(load_settings(config).database.url)
    try:
        wait_for(in_folders(dovecot, inbox=0, done=1))
        wait_for(lambda: filed(db) == {"Only once": 1})

        def finished() -> bool:  # recorded just after the move the folders already show
            with db.read() as session:
                return session.scalars(select(ImapImport.finished_at)).one() is not None
        wait_for(finished)
    finally:
        db.dispose()
        assert second.stop() == 0
        proxy.close()
    assert log.read_text().count("spooled 1 messages") == 1


@pytest.mark.sqlite_only
def test_a_new_uidvalidity_voids_the_recorded_uids(tmp_path: Path, db_url: str, dovecot: Dovecot,
                                                   open_db: list[Database], caplog: pytest.LogCaptureFixture) -> None:
    settings, db = configured(tmp_path, db_url, open_db, account(dovecot.port, folder="Support"))
    poller = ImapPoller(db, settings.imap[0])
    dovecot.append(mail("Before"), folder="Support")
    assert poller.poll_once().imported == 1
    with dovecot.client(None) as client:
        old = client.folder_status("Support", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
        client.delete_folder("Support")
        client.create_folder("Support")
        client.append("Support", mail("After"))
        new = client.folder_status("Support", [b"UIDVALIDITY", b"UIDNEXT"])
    assert new[b"UIDVALIDITY"] != old and new[b"UIDNEXT"] == 2  # "After" has UID 1, as "Before" had
    assert poller.poll_once().imported == 1  # a new message, not the recorded UID 1 of the old folder
    SpoolRunner(db, settings).drain()
    assert filed(db) == {"Before": 1, "After": 1}
    with db.read() as session:
        assert set(session.scalars(select(ImapImport.uid_validity))) == {new[b"UIDVALIDITY"]}
    assert "new UIDVALIDITY" in caplog.text


@pytest.mark.sqlite_only
def test_a_refused_login_is_logged_and_retried_with_doubling_delays(
        tmp_path: Path, db_url: str, dovecot: Dovecot, open_db: list[Database],
        caplog: pytest.LogCaptureFixture) -> None:
    settings, db = configured(tmp_path, db_url, open_db, account(dovecot.port, password="wrong",
                                                                  retry_initial_seconds=0.05, retry_max_seconds=0.2))
    caplog.set_level(logging.INFO, "mailgate.imap_poller")

    def refusals() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "login refused" in r.getMessage()]

    with polling(db, settings.imap[0]):
        wait_for(lambda: len(refusals()) >= 5)
    records = refusals()
    assert {r.levelno for r in records} == {logging.ERROR}
    assert records[0].getMessage().startswith(f"imap support-box: login refused for {USER}")
    delays = [float(re.search(r"retrying in ([\d.]+)s", r.getMessage()).group(1)) for r in records[:5]]  # type: ignore[union-attr]
    assert delays == [0.05, 0.1, 0.2, 0.2, 0.2]


@pytest.mark.sqlite_only
def test_a_server_restart_while_idling_is_survived(tmp_path: Path, db_url: str, dovecot: Dovecot,
                                                   open_db: list[Database]) -> None:
    settings, db = configured(tmp_path, db_url, open_db, account(dovecot.port, idle_seconds=1740))
    with polling(db, settings.imap[0]):
        dovecot.append(mail("Before the restart"))
        wait_for(in_folders(dovecot, inbox=0, done=1))
        dovecot.stop()
        dovecot.start()
        dovecot.append(mail("After the restart"))
        wait_for(in_folders(dovecot, inbox=0, done=2))
    SpoolRunner(db, settings).drain()
    assert filed(db) == {"Before the restart": 1, "After the restart": 1}


@pytest.mark.sqlite_only
def test_tls_and_starttls_trust_the_configured_ca_file_and_nothing_else(
        tmp_path: Path, db_url: str, dovecot_tls: Dovecot, open_db: list[Database]) -> None:
    ca_file = str(dovecot_tls.certificate)
    settings, db = configured(tmp_path, db_url, open_db,
                              account(dovecot_tls.tls_port, name="tls", security="tls", ca_file=ca_file),
                              account(dovecot_tls.port, name="starttls", security="starttls", ca_file=ca_file),
                              account(dovecot_tls.tls_port, name="untrusted", security="tls"))
    tls, starttls, untrusted = settings.imap
    with pytest.raises(MailboxUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        ImapPoller(db, untrusted).poll_once()  # self-signed: the system's CAs do not vouch for it
    dovecot_tls.append(mail("Over TLS"))
    assert ImapPoller(db, tls).poll_once().imported == 1
    dovecot_tls.append(mail("Over STARTTLS"))
    assert ImapPoller(db, starttls).poll_once().imported == 1
    SpoolRunner(db, settings).drain()
    assert filed(db) == {"Over TLS": 1, "Over STARTTLS": 1}
