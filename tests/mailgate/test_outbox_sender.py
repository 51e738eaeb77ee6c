"""The outbox sender against real SMTP servers on loopback: delivery, retries, give-up, leases, TLS."""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.compose import Outgoing, Rendered, mailbox
from core.mail_purpose import MailPurpose
from core.db import Database, open_database
from core.errors import ConfigError
from core.models import OutboxItem, OutboxState
from core.outbox import LEASE, OutgoingMail, claim_due, queue_mail, record_failure, record_sent
from core.schema import upgrade
from core.settings import RelaySettings, Settings, load_settings
from mailgate.outbox_sender import OutboxSender
from testkit import Sink, free_port, write_config

START = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
ALICE = "alice@customer.test"
GROUP = "support@example.com"
PASSWORD_ENV = "POSTDESK_TEST_RELAY_PASSWORD"


class Clock:
    """Time the test moves by hand; `tick` is added on every reading (a slow smarthost, seen from outside)."""

    def __init__(self, now: datetime = START, tick: timedelta = timedelta(0)) -> None:
        self.now, self.tick = now, tick

    def __call__(self) -> datetime:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Relay:
    """An aiosmtpd smarthost with scripted answers: one per refused recipient, one to DATA."""

    port: int = field(default_factory=free_port)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 kept"
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[str, bytes, bytes, bool]] = field(default_factory=list)
    after_data: Callable[[int], None] = lambda received: None
    controller: Any = None

    def start(self, **options: Any) -> Relay:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        relay = self

        class Script:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                                  rcpt_options: list[str]) -> str:
                if address in relay.rcpt_replies:
                    return relay.rcpt_replies[address]
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if relay.data_reply.startswith("250"):
                    relay.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
                relay.after_data(len(relay.received))
                return relay.data_reply

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            relay.logins.append((mechanism, data.login, data.password, session.ssl is not None))
            ok = data.password == b"s3cret pass"
            return AuthResult(success=ok, handled=ok)  # not handled: aiosmtpd answers 535 itself

        self.controller = Controller(Script(), hostname="127.0.0.1", port=self.port, authenticator=authenticate,
                                     **options)
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def start_relay() -> Iterator[Callable[..., Relay]]:
    started: list[Relay] = []

    def start(relay: Relay | None = None, **options: Any) -> Relay:
        started.append((relay or Relay()).start(**options))
        return started[-1]

    yield start
    for relay in started:
        relay.stop()


def queue(db: Database, clock: Clock, n: int = 1, to: tuple[str, ...] = (ALICE,)) -> list[str]:
    """Queue n replies built as the helpdesk builds them; returns their Message-IDs."""
    ids = []
    with db.write() as session:
        for number in range(n):
            mail = Outgoing(sender=mailbox(GROUP, "Support"), to=[mailbox(r) for r in to], subject=f"case {number}",
                            body=Rendered("Hello from the helpdesk.\n", "<p>Hello from the helpdesk.</p>\n"))
            item = queue_mail(session, OutgoingMail(mail, MailPurpose.WORKER_REPLY, GROUP, to, None), filters=(),
                              hostname="postdesk.test", now=clock.now)
            assert item is not None
            ids.append(item.message_id)
    return ids


def items(db: Database) -> list[OutboxItem]:
    with db.read() as session:
        return list(session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


def message_ids(received: list[tuple[str, list[str], bytes]]) -> list[str]:
    return [str(message_from_bytes(raw, policy=default)["Message-ID"]) for _, _, raw in received]


def sender(db: Database, relay: RelaySettings, clock: Clock) -> OutboxSender:
    return OutboxSender(db, relay, "postdesk.test", clock=clock)


def test_each_mail_is_delivered_once_with_its_own_message_id(database: Database, settings: Settings,
                                                            sink: Sink) -> None:
    clock = Clock()
    ids = queue(database, clock, 3)
    outbox = sender(database, settings.relay, clock)
    assert outbox.send_due() == 3
    assert outbox.send_due() == 0
    assert message_ids(sink.received) == ids == [i.message_id for i in items(database)]
    assert [(i.state, i.attempts, i.sent_at, i.last_error) for i in items(database)] == [
        (OutboxState.SENT, 1, START, None)] * 3
    assert all(mail_from == GROUP and rcpts == [ALICE] for mail_from, rcpts, _ in sink.received)


def test_smarthost_down_waits_with_doubling_delays_then_delivers_once(database: Database, settings: Settings,
                                                                      sink: Sink) -> None:
    relay = replace(settings.relay, retry_initial_seconds=60, retry_max_seconds=240)
    clock = Clock()
    ids = queue(database, clock, 2)
    outbox = sender(database, relay, clock)
    sink.stop()
    for attempts, delay in ((1, 60), (2, 120), (3, 240), (4, 240)):
        assert outbox.send_due() == 2
        assert outbox.send_due() == 0, "not due again before its retry time"
        for item in items(database):
            assert (item.state, item.attempts) == (OutboxState.QUEUED, attempts)
            assert item.next_attempt_at == clock.now + timedelta(seconds=delay)
            assert "ConnectionRefusedError" in (item.last_error or "")
        clock.advance(delay - 1)
        assert outbox.send_due() == 0
        clock.advance(1)
    sink.start()
    assert outbox.send_due() == 2
    clock.advance(3600)
    assert outbox.send_due() == 0
    assert sorted(message_ids(sink.received)) == sorted(ids)
    assert [(i.state, i.attempts) for i in items(database)] == [(OutboxState.SENT, 5)] * 2


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("script", "state", "error"), [
    ({"data_reply": "451 4.3.0 try again later"}, OutboxState.QUEUED, "451 4.3.0 try again later"),
    ({"rcpt_replies": {ALICE: "452 4.2.2 mailbox full", "bob@customer.test": "550 5.1.1 no such user"}},
     OutboxState.QUEUED, f"{ALICE}: 452 4.2.2 mailbox full"),
    ({"data_reply": "554 5.6.0 content rejected"}, OutboxState.FAILED, "554 5.6.0 content rejected"),
    ({"rcpt_replies": {ALICE: "550 5.1.1 no such user", "bob@customer.test": "550 5.1.1 no such user"}},
     OutboxState.FAILED, "bob@customer.test: 550 5.1.1 no such user"),
])
def test_the_smarthost_answer_decides_retry_or_failure(database: Database, settings: Settings,
                                                       start_relay: Callable[..., Relay], script: dict[str, Any],
                                                       state: OutboxState, error: str) -> None:
    relay = start_relay(Relay(**script))
    clock = Clock()
    queue(database, clock, 1, to=(ALICE, "bob@customer.test"))
    assert sender(database, replace(settings.relay, port=relay.port), clock).send_due() == 1
    (item,) = items(database)
    assert (item.state, item.attempts, item.sent_at) == (state, 1, None)
    assert error in (item.last_error or "")
    assert relay.received == []


def test_a_partly_refused_mail_is_sent_with_the_refusals_noted(database: Database, settings: Settings,
                                                             start_relay: Callable[..., Relay]) -> None:
    relay = start_relay(Relay(rcpt_replies={"gone@customer.test": "550 5.1.1 no such user"}))
    clock = Clock()
    (sent_id,) = queue(database, clock, 1, to=(ALICE, "gone@customer.test"))
    sender(database, replace(settings.relay, port=relay.port), clock).send_due()
    (item,) = items(database)
    assert item.state is OutboxState.SENT
    assert item.last_error == "refused: gone@customer.test: 550 5.1.1 no such user"
    assert [rcpts for _, rcpts, _ in relay.received] == [[ALICE]]
    assert message_ids(relay.received) == [sent_id]


def test_recipients_refused_for_now_get_the_same_mail_later(database: Database, settings: Settings,
                                                           start_relay: Callable[..., Relay]) -> None:
    relay = start_relay(Relay(rcpt_replies={"full@customer.test": "452 4.2.2 mailbox full",
                                            "gone@customer.test": "550 5.1.1 no such user"}))
    clock = Clock()
    (sent_id,) = queue(database, clock, 1, to=(ALICE, "full@customer.test", "gone@customer.test"))
    outbox = sender(database, replace(settings.relay, port=relay.port), clock)
    outbox.send_due()
    (item,) = items(database)
    assert (item.state, item.rcpt_tos, item.attempts) == (OutboxState.QUEUED, ["full@customer.test"], 1)
    assert "full@customer.test: 452 4.2.2 mailbox full" in (item.last_error or "")
    relay.rcpt_replies.clear()
    clock.advance(settings.relay.retry_initial_seconds)
    outbox.send_due()
    assert [rcpts for _, rcpts, _ in relay.received] == [[ALICE], ["full@customer.test"]]
    assert message_ids(relay.received) == [sent_id, sent_id]
    assert [(i.state, i.attempts, i.last_error) for i in items(database)] == [(OutboxState.SENT, 2, None)]


def test_all_refused_some_for_now_retries_only_those(database: Database, settings: Settings,
                                                     start_relay: Callable[..., Relay]) -> None:
    relay = start_relay(Relay(rcpt_replies={ALICE: "452 4.2.2 mailbox full", "gone@customer.test": "550 5.1.1 no"}))
    clock = Clock()
    queue(database, clock, 1, to=(ALICE, "gone@customer.test"))
    sender(database, replace(settings.relay, port=relay.port), clock).send_due()
    (item,) = items(database)
    assert (item.state, item.rcpt_tos) == (OutboxState.QUEUED, [ALICE])
    assert "gone@customer.test: 550 5.1.1 no" in (item.last_error or "")


@pytest.mark.sqlite_only
def test_an_address_beyond_ascii_goes_out_with_smtputf8(database: Database, settings: Settings, sink: Sink) -> None:
    clock = Clock()
    mail = Outgoing(sender=mailbox(GROUP), to=[mailbox(ALICE)], subject="Grüße",
                    body=Rendered("Grüße aus dem Helpdesk.\n", "<p>Grüße aus dem Helpdesk.</p>\n"))
    with database.write() as session:
        queue_mail(session, OutgoingMail(mail, MailPurpose.WORKER_REPLY, GROUP, ("jürgen@customer.test",), None),
                   filters=(), hostname="postdesk.test", now=clock.now)
    assert sender(database, settings.relay, clock).send_due() == 1
    assert [rcpts for _, rcpts, _ in sink.received] == [["jürgen@customer.test"]]
    assert [i.state for i in items(database)] == [OutboxState.SENT]


@pytest.mark.sqlite_only
def test_a_relay_closing_the_session_costs_only_that_mail(database: Database, settings: Settings,
                                                          start_relay: Callable[..., Relay]) -> None:
    relay = start_relay(Relay(rcpt_replies={"busy@customer.test": "421 4.7.0 too busy, closing"}))
    clock = Clock()
    queue(database, clock, 1, to=("busy@customer.test",))
    later = queue(database, clock, 2)
    sender(database, replace(settings.relay, port=relay.port), clock).send_due()
    assert [i.state for i in items(database)] == [OutboxState.QUEUED, OutboxState.SENT, OutboxState.SENT]
    assert message_ids(relay.received) == later


def test_temporary_failures_end_in_failure_after_the_give_up_age(database: Database, settings: Settings,
                                                                 sink: Sink) -> None:
    relay = replace(settings.relay, retry_initial_seconds=60, retry_max_seconds=120, give_up_after_seconds=600)
    clock = Clock()
    queue(database, clock)
    outbox = sender(database, relay, clock)
    sink.stop()
    while items(database)[0].state is OutboxState.QUEUED:
        assert clock.now - START <= timedelta(seconds=600 + 120), "still retrying long after the give-up age"
        outbox.send_due()
        clock.advance(30)
    (item,) = items(database)
    assert item.state is OutboxState.FAILED and item.attempts == 7  # at 0, 60, 180, 300, 420, 540, 660 s
    assert "ConnectionRefusedError" in (item.last_error or "")
    sink.start()
    clock.advance(3600)
    assert outbox.send_due() == 0 and sink.received == []


def test_mail_claimed_by_a_sender_that_died_is_retaken_after_the_lease(database: Database, settings: Settings,
                                                                       sink: Sink) -> None:
    clock = Clock()
    (mail_id,) = queue(database, clock)
    with database.write() as session:
        (dead,) = claim_due(session, clock.now)  # ... and the process is killed before it sends
    outbox = sender(database, settings.relay, clock)
    clock.advance(LEASE.total_seconds() - 1)
    assert outbox.send_due() == 0
    assert [(i.state, i.attempts) for i in items(database)] == [(OutboxState.SENDING, 1)]
    clock.advance(2)
    assert outbox.send_due() == 1
    assert message_ids(sink.received) == [mail_id]
    assert [(i.state, i.attempts) for i in items(database)] == [(OutboxState.SENT, 2)]


def test_a_sender_back_after_its_lease_changes_nothing(database: Database, settings: Settings) -> None:
    clock = Clock()
    queue(database, clock)
    with database.write() as session:
        (stale,) = claim_due(session, clock.now)
    clock.advance(LEASE.total_seconds() + 1)
    with database.write() as session:
        (current,) = claim_due(session, clock.now)
    with database.write() as session:
        assert not record_failure(session, stale, clock.now, "451 late", permanent=True, relay=settings.relay)
    assert [(i.state, i.attempts, i.last_error) for i in items(database)] == [(OutboxState.SENDING, 2, None)]
    with database.write() as session:
        record_sent(session, [(current, "")], clock.now)
        assert not record_failure(session, current, clock.now, "late", permanent=False, relay=settings.relay)
    assert [i.state for i in items(database)] == [OutboxState.SENT]


def test_no_mail_is_begun_in_the_second_half_of_its_lease(database: Database, settings: Settings,
                                                          sink: Sink) -> None:
    """A smarthost so slow that a minute passes per mail: the rest of a claim goes back, unsent, uncounted."""
    clock = Clock(tick=timedelta(minutes=1))
    ids = queue(database, clock, 6)
    outbox = sender(database, settings.relay, clock)
    assert outbox.send_due() == 6
    assert message_ids(sink.received) == ids
    assert [(i.state, i.attempts) for i in items(database)] == [(OutboxState.SENT, 1)] * 6
    sent_at = [i.sent_at for i in items(database)]
    assert sent_at[-1] > sent_at[0], "the claim was split"


def test_a_stop_puts_the_rest_of_the_claim_back_unsent(database: Database, settings: Settings,
                                                       start_relay: Callable[..., Relay]) -> None:
    stop = threading.Event()

    def stop_after_three(received: int) -> None:
        if received == 3:
            stop.set()  # before the 250 goes out: the sender sees it before it begins the fourth mail

    relay = start_relay(Relay(after_data=stop_after_three))
    clock = Clock()
    ids = queue(database, clock, 20)
    outbox = sender(database, replace(settings.relay, port=relay.port), clock)
    runner = threading.Thread(target=outbox.run, args=(stop,))
    runner.start()
    runner.join(30)
    assert not runner.is_alive()
    assert message_ids(relay.received) == ids[:3]
    assert [(i.state, i.attempts) for i in items(database)] == (
        [(OutboxState.SENT, 1)] * 3 + [(OutboxState.QUEUED, 0)] * 17)


def test_two_senders_on_one_postgresql_database_send_each_mail_once(postgres_url: str, sink: Sink) -> None:
    relay = RelaySettings(port=sink.port, timeout_seconds=5)
    databases = [open_database(postgres_url) for _ in range(2)]
    try:
        upgrade(databases[0])
        ids = queue(databases[0], Clock(), 300)
        barrier = threading.Barrier(2)
        counts: list[int] = []

        def send(db: Database) -> None:
            outbox = OutboxSender(db, relay, "postdesk.test", batch_size=10)
            barrier.wait()
            counts.append(outbox.send_due())

        threads = [threading.Thread(target=send, args=(db,)) for db in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert sorted(Counter(message_ids(sink.received)).items()) == sorted((i, 1) for i in ids)
        assert sum(counts) == 300 and min(counts) > 0, f"both senders took part: {counts}"
        assert {(i.state, i.attempts) for i in items(databases[0])} == {(OutboxState.SENT, 1)}
    finally:
        for db in databases:
            db.dispose()


# --- STARTTLS and login -----------------------------------------------------------------------------

def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, made with the openssl command."""
    cert, key = folder / "relay-cert.pem", folder / "relay-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_relay(tmp_path: Path, start_relay: Callable[..., Relay]) -> tuple[Relay, Path]:
    """A relay that speaks only after STARTTLS and offers only AUTH LOGIN; and its certificate."""
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    relay = start_relay(tls_context=context, require_starttls=True, auth_require_tls=True, auth_required=True,
                        auth_exclude_mechanism=["PLAIN"])
    return relay, cert


def tls_settings(tmp_path: Path, db_url: str, relay: Relay, ca_file: str) -> Settings:
    """The test settings file with STARTTLS, a login and the relay's certificate, named relative to it."""
    path = write_config(tmp_path, db_url, relay_port=relay.port)
    extra = f'starttls = true\nusername = "postdesk"\npassword_env = "{PASSWORD_ENV}"\nca_file = "{ca_file}"\n'
    path.write_text(path.read_text().replace("[relay]\n", "[relay]\n" + extra))
    return load_settings(path)


@pytest.mark.sqlite_only
def test_starttls_and_auth_login_with_the_password_from_the_environment(
        tmp_path: Path, db_url: str, database: Database, tls_relay: tuple[Relay, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    relay, cert = tls_relay
    monkeypatch.setenv(PASSWORD_ENV, "s3cret pass")
    settings = tls_settings(tmp_path, db_url, relay, cert.name)
    assert settings.relay.ca_file == str(cert)
    clock = Clock()
    ids = queue(database, clock, 2)
    assert sender(database, settings.relay, clock).send_due() == 2
    assert relay.logins == [("LOGIN", b"postdesk", b"s3cret pass", True)]
    assert message_ids(relay.received) == ids


def test_a_ca_file_that_is_not_there_stops_start_up_by_name(tmp_path: Path) -> None:
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    path.write_text(path.read_text().replace("[relay]\n", '[relay]\nca_file = "missing.pem"\n'))
    with pytest.raises(ConfigError, match="relay.ca_file"):
        load_settings(path)


@pytest.mark.sqlite_only
@pytest.mark.parametrize("trouble", ["untrusted certificate", "wrong password"])
def test_a_relay_we_cannot_log_in_to_keeps_the_mail_waiting(
        tmp_path: Path, db_url: str, database: Database, tls_relay: tuple[Relay, Path],
        monkeypatch: pytest.MonkeyPatch, trouble: str) -> None:
    """Our settings or the relay are wrong, not the mail: it is retried, never failed at once."""
    relay, cert = tls_relay
    monkeypatch.setenv(PASSWORD_ENV, "wrong" if trouble == "wrong password" else "s3cret pass")
    (tmp_path / "other").mkdir()
    other, _ = self_signed_certificate(tmp_path / "other")
    settings = tls_settings(tmp_path, db_url, relay, str(other if trouble == "untrusted certificate" else cert))
    clock = Clock()
    queue(database, clock, 2)
    assert sender(database, settings.relay, clock).send_due() == 2
    assert [(i.state, i.attempts) for i in items(database)] == [(OutboxState.QUEUED, 1)] * 2
    expected = "SSLCertVerificationError" if trouble == "untrusted certificate" else "535"
    assert all(expected in (i.last_error or "") for i in items(database))
    assert len(relay.logins) == (1 if trouble == "wrong password" else 0), "one try for the whole batch"
    assert relay.received == []
