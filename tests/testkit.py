"""Test kit: real databases (SQLite always, PostgreSQL when configured), a real daemon, mail builders."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
import json
import re
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, select, text

from core.db import Database, open_database
from core.schema import SCHEMA_HEAD, current_revision, upgrade
from core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
POSTGRES_ENV = "POSTDESK_TEST_POSTGRES_URL"
# Every mail any test smarthost (Sink) received, and every worker address a test database held:
# conftest greps the one for the other when the session ends (no worker address may reach anyone else).
SMARTHOST_RECEIVED: list[tuple[list[str], bytes]] = []
KNOWN_WORKERS: set[str] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05) -> object:
    """Poll until predicate() is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


def _fresh_postgres_database(admin_url: str, template: str | None = None) -> tuple[str, Callable[[], None]]:
    """A new database, empty or a copy of `template` (a database nobody is connected to); its URL and its drop."""
    name = f"postdesk_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def _backends() -> list[object]:
    postgres = pytest.mark.postgres
    reason = f"{POSTGRES_ENV} is not set (CI sets it; see .ci/run)"
    return ["sqlite", pytest.param("postgresql", marks=[postgres, pytest.mark.skipif(
        not os.environ.get(POSTGRES_ENV), reason=reason)])]


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file, and (when configured) a fresh PostgreSQL database.

    For a test that asks for `database` (the schema), the PostgreSQL one is made a copy of postgres_schema:
    a copy is made as fast as an empty database, and migrating takes as long again.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'postdesk.db'}"
        return
    template = request.getfixturevalue("postgres_schema") if "database" in request.fixturenames else None
    url, drop = _fresh_postgres_database(os.environ[POSTGRES_ENV], template)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database; skips (locally) when none is configured."""
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        pytest.skip(f"{POSTGRES_ENV} is not set (CI sets it; see .ci/run)")
    url, drop = _fresh_postgres_database(admin)
    try:
        yield url
    finally:
        drop()


def write_config(folder: Path, db_url: str, port: int | None = None, *, relay_port: int | None = None,
                 domains: tuple[str, ...] = ("example.com",), default_address: str = "support@example.com",
                 max_message_size: int = 1048576, auto_reply_window: int = 3600,
                 imap: tuple[dict[str, Any], ...] = (), helpdesk: dict[str, Any] | None = None) -> Path:
    """A throwaway settings file: the shipped defaults but this database, fast relay retries, and port 0 for
    SMTP unless one is given: the daemon binds a free port itself and names it in its ready line (no race
    for a port picked here, closed, and handed on)."""
    port = port or 0
    relay_port = relay_port or free_port()  # nothing listens there unless a test starts a sink
    path = folder / "settings.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n\n'
        f'[smtp]\nlisten = "127.0.0.1:{port}"\nhostname = "postdesk.test"\nmax_message_size = {max_message_size}\n\n'
        f'[helpdesk]\ndomains = {json.dumps(list(domains))}\naddresses = ["help@other.test"]\n'
        f'default_group = "Support"\ndefault_address = "{default_address}"\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in (helpdesk or {}).items()) + "\n"
        f'[relay]\nhost = "127.0.0.1"\nport = {relay_port}\ntimeout_seconds = 5\n'
        'retry_initial_seconds = 0.2\nretry_max_seconds = 1\n\n'
        f'[auto_reply]\nwindow_seconds = {auto_reply_window}\n\n'
        '[logging]\nlevel = "INFO"\n\n'
        '[web]\nlisten = ""\n'  # a test that wants the desk serves it on a port of its own
        + "".join("\n[[imap]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in entry.items()) for entry in imap))
    return path


@dataclass
class Sink:
    """A real SMTP server on 127.0.0.1 standing in for the smarthost; it keeps what it is given."""

    port: int
    received: list[tuple[str, list[str], bytes]]
    controller: Any = None

    def start(self) -> Sink:
        from aiosmtpd.controller import Controller

        sink = self

        class Keep:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
                SMARTHOST_RECEIVED.append((list(envelope.rcpt_tos), envelope.original_content))
                return "250 2.0.0 kept"

        self.controller = Controller(Keep(), hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def mails(self) -> list[EmailMessage]:
        from email import message_from_bytes
        from email.policy import default

        return [message_from_bytes(raw, policy=default) for _, _, raw in self.received]  # type: ignore[misc]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for (_, rcpts, _), m in zip(self.received, self.mails()) if address in rcpts]


@pytest.fixture
def sink() -> Iterator[Sink]:
    running = Sink(free_port(), []).start()
    yield running
    running.stop()


@pytest.fixture
def config_path(tmp_path: Path, db_url: str, sink: Sink) -> Path:
    return write_config(tmp_path, db_url, relay_port=sink.port)


@pytest.fixture
def settings(config_path: Path) -> Settings:
    return load_settings(config_path)


def worker_address_leaks(db: Database) -> list[str]:
    """Mail queued for anyone but a worker that holds a worker's address in any written form.

    Run after every test that had a database: over the whole suite, no customer-bound byte the
    helpdesk queued (and so no byte the test smarthost received from it) may name a worker.
    """
    from core.models import OutboxItem, Worker
    from core.privacy import PrivateAddresses

    with db.read() as session:
        workers = set(session.scalars(select(Worker.email)))
        KNOWN_WORKERS.update(workers)
        if not workers:
            return []
        private = PrivateAddresses.of(workers)
        return [f"{item.purpose} {item.message_id} to {item.rcpt_tos}"
                for item in session.scalars(select(OutboxItem))
                if not workers & set(item.rcpt_tos) and private.found_in(item.raw)]


def smarthost_leaks() -> list[str]:
    """Mail the test smarthosts received for anyone but a worker that holds any known worker's address."""
    if not KNOWN_WORKERS:
        return []
    from core.privacy import PrivateAddresses

    private = PrivateAddresses.of(KNOWN_WORKERS)
    return [f"to {rcpts}: {raw[:200]!r}" for rcpts, raw in SMARTHOST_RECEIVED
            if not KNOWN_WORKERS & {r.lower() for r in rcpts} and private.found_in(raw)]


def assert_no_worker_address_leaked(url: str) -> None:
    db = open_database(url)
    try:
        leaks = worker_address_leaks(db)
    finally:
        db.dispose()
    assert not leaks, f"a worker's address reached a customer: {leaks}"


@pytest.fixture(scope="session")
def sqlite_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database holding the schema, migrated once a session; each `database` on SQLite starts as a
    copy (Alembic takes a fifth of a second a run; test_schema checks what the migrations build)."""
    path = tmp_path_factory.mktemp("schema") / "postdesk.db"
    db = open_database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()  # closing folds the write-ahead log into the file
    return path


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """The name of a PostgreSQL database holding the schema, migrated once a session, for db_url to copy."""
    url, drop = _fresh_postgres_database(os.environ[POSTGRES_ENV])
    db = open_database(url)
    upgrade(db)
    db.dispose()  # PostgreSQL copies only a database nobody is connected to
    yield make_url(url).database or ""
    drop()


@pytest.fixture
def database(settings: Settings, sqlite_schema: Path) -> Iterator[Database]:
    """The settings' database with the schema: a SQLite file not made yet starts as a copy of sqlite_schema, a
    PostgreSQL database is one of postgres_schema already (db_url); anything else is migrated here."""
    path = make_url(settings.database.url).database if settings.database.url.startswith("sqlite") else None
    if path is not None and not Path(path).exists():
        shutil.copyfile(sqlite_schema, path)
    db = open_database(settings.database.url)
    if current_revision(db) != SCHEMA_HEAD:
        upgrade(db)
    yield db
    try:
        leaks = worker_address_leaks(db)
        assert not leaks, f"a worker's address reached a customer: {leaks}"
    finally:
        db.dispose()


READY_LINE = b"postdesk: listening on"
_READY = re.compile(re.escape(READY_LINE) + rb" \[?[^\s\]]*\]?:(?P<port>\d+)")


@dataclass
class Daemon:
    """A real `postdesk serve` process; start, stop with SIGTERM, restart."""

    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> Settings:
        return load_settings(self.config)

    bound: int | None = None  # the port the daemon named in its ready line

    @property
    def port(self) -> int:
        assert self.bound is not None, "the daemon is not running"
        return self.bound

    def start(self) -> Daemon:
        handle = self.log.open("ab")
        earlier = self.log.stat().st_size  # a restart appends: only what this start writes counts
        self.process = subprocess.Popen([sys.executable, "-m", "workers", "--config", str(self.config), "serve"],
                                        stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postdesk serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            # printed once every part has started; the port opens earlier, before the scheduler starts
            ready = _READY.search(self.log.read_bytes()[earlier:])
            if ready:
                self.bound = int(ready["port"])
                return self
            time.sleep(0.05)
        raise RuntimeError(f"postdesk serve did not listen:\n{self.log.read_text()}")

    def stop(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=30)

    def send(self, raw: bytes, to: tuple[str, ...] = ("support@example.com",), sender: str = "customer@outside.test") -> None:
        with self.smtp() as client:
            client.sendmail(sender, list(to), raw)


@contextmanager
def daemons_sharing(db_url: str, folder: Path, count: int = 2) -> Iterator[list[Daemon]]:
    """Several real daemons, each with its own settings and port, on one database; each still running at
    the end must stop cleanly."""
    started: list[Daemon] = []
    try:
        for number in range(count):
            own = folder / f"daemon{number + 1}"
            own.mkdir()
            started.append(Daemon(write_config(own, db_url), own / "daemon.log").start())
        yield started
    finally:
        for running in started:
            if running.process is not None:
                assert running.stop() == 0, running.log.read_text()
    assert_no_worker_address_leaked(db_url)


@pytest.fixture
def daemon(config_path: Path, tmp_path: Path) -> Iterator[Daemon]:
    """A started daemon on its own database and port; stopped (SIGTERM) after the test."""
    running = Daemon(config_path, tmp_path / "daemon.log").start()
    yield running
    if running.process is not None:
        if running.process.poll() is None:
            running.stop()
    assert_no_worker_address_leaked(running.settings.database.url)


def run_cli(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real `postdesk` command as a whole process.

    For what only a process shows: the entry point, a terminal, signals, several processes at once.
    A process start costs most of a second (the ORM's import); everything else uses run_in_process.
    """
    return subprocess.run([sys.executable, "-m", "workers", "--config", str(config), *args],
                          input=stdin, capture_output=True, cwd=ROOT, timeout=300)


def run_in_process(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real `postdesk` command in this process (click's runner) and report it as run_cli does.

    What a whole process would show is kept: its exit status, its stdout and stderr as bytes, its
    log lines on stderr (the command configures logging as in a new process), and an exception that
    escapes as a traceback on stderr with status 1. Stdin is never a terminal, as when piped.
    """
    from click.testing import CliRunner

    from workers.cli import main

    argv = ["--config", str(config), *args]
    with _logging_as_in_a_new_process(), contextlib.chdir(ROOT):
        result = CliRunner().invoke(main, argv, input=stdin, prog_name="postdesk")
    stderr, status = result.stderr_bytes, result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception)).encode()
        status = 1
    return subprocess.CompletedProcess(["postdesk", *argv], status, result.stdout_bytes, stderr)


@contextmanager
def _logging_as_in_a_new_process() -> Iterator[None]:
    """No handler on the root logger, as in a process just started, so the command's own logging
    setup writes to its stderr; pytest's handlers and every logger's level are put back after."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    loggers = [root, *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger))]
    levels = [(logger, logger.level) for logger in loggers]
    root.handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        for logger, level in levels:
            logger.setLevel(level)


def text_of(mail: EmailMessage) -> str:
    """The plain-text part of a mail the helpdesk wrote (each is text and HTML alternatives), as a text reader sees it."""
    part = mail.get_body(("plain",))
    assert part is not None, "every mail the helpdesk writes has a text part"
    return str(part.get_content())


def make_mail(subject: str = "Printer on fire", body: str = "Help, please.", sender: str = "Alice <alice@customer.test>",
              to: str = "support@example.com", cc: str | None = None, message_id: str | None = None,
              in_reply_to: str | None = None, references: str | None = None, charset: str = "utf-8",
              attachments: list[tuple[str, str, bytes]] = ()) -> EmailMessage:  # type: ignore[assignment]
    mail = EmailMessage(policy=SMTP)  # CRLF line ends, as a real client sends them
    mail["From"] = sender
    mail["To"] = to
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail["Date"] = format_datetime(datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc))
    mail["Message-ID"] = message_id or make_msgid(domain="customer.test")
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = references
    mail.set_content(body, charset=charset)
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail


def cli_json(config: Path, *args: str) -> Any:
    """What a `--json` command prints, run as a whole process."""
    result = run_cli(config, *args, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def json_in_process(config: Path, *args: str) -> Any:
    """What a `--json` command prints, run in this process (see run_in_process)."""
    result = run_in_process(config, *args, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


class Clock:
    """A clock a test moves by hand (`clock.now += timedelta(...)`), for a Helpdesk's `clock`."""

    def __init__(self, start: datetime = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()
