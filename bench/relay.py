"""Relay benchmark: worker replies through the outbox of `postdesk serve` to a sink, against smtplib straight to one.

    python bench/relay.py --n 5000

On a fresh SQLite database with one ticket (a customer, a worker), N worker replies are filed with
core.conversation.answer_as_worker, one transaction each as the gateway would: each is composed from
its template and queued. A real `postdesk serve` (a subprocess, started and idle before the clock
starts) delivers the outbox to an aiosmtpd sink in its own process. The end-to-end rate runs from
the first reply queued until the sink has every mail; it can be no faster than the queueing.

So the outbox is also timed on its own: the same N mails set back to queued (a backlog, as after a
smarthost outage) and a fresh `postdesk serve` delivering them to a fresh sink. Last, the same N
messages, as queued, are handed to a sink of the same kind over one smtplib connection. Every run
is checked: each mail arrived exactly once by Message-ID (and the outbox says sent); the exit code
is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

from sqlalchemy import select, update

# `python bench/relay.py` puts bench/ first on sys.path, where bench/spam.py would hide the spam package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from core.addresses import Address  # noqa: E402
from core.conversation import answer_as_worker  # noqa: E402
from core.db import Database, open_database  # noqa: E402
from core.groups import ensure_default_group, inbox_of  # noqa: E402
from core.inbound import Envelope, InboundMessage  # noqa: E402
from core.models import OutboxItem, OutboxState, Ticket, Worker, utcnow  # noqa: E402
from core.notify import Outbound  # noqa: E402
from core.schema import upgrade  # noqa: E402
from core.settings import load_settings  # noqa: E402
from core.staff import add_worker  # noqa: E402
from core.tickets import add_recipients, open_ticket, store_message  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

CUSTOMER = Address("alice@customer.test", "Alice Smith")
WORKER = Address("jane@corp.test", "Jane Doe")
DELIVERY_TIMEOUT_SECONDS = 600.0
POLL_SECONDS = 0.005
_MESSAGE_ID = re.compile(rb"^message-id:\s*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


# --- the sink --------------------------------------------------------------------------------------

class _Collect:
    """Keeps each mail's Message-ID (from its header section) and counts it where the bench can see."""

    def __init__(self, count: Synchronized) -> None:  # type: ignore[type-arg]
        self.count = count
        self.ids: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        head = envelope.original_content.split(b"\r\n\r\n", 1)[0]  # type: ignore[attr-defined]
        found = _MESSAGE_ID.search(head)
        self.ids.append(found.group(1).decode() if found else "")
        with self.count.get_lock():
            self.count.value += 1
        return "250 2.0.0 kept"


def _run_sink(port: int, count: Synchronized, ready: Event, stop: Event,  # type: ignore[type-arg]
              report: Connection) -> None:
    from aiosmtpd.controller import Controller

    handler = _Collect(count)
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    report.send(handler.ids)


@dataclass
class Sink:
    """An aiosmtpd server in its own process, so it does not share the GIL with the sender."""

    port: int
    count: Synchronized  # type: ignore[type-arg]

    def wait_for(self, n: int, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> float:
        """The moment the sink has n mails (or the deadline passed)."""
        deadline = time.perf_counter() + timeout
        while self.count.value < n and time.perf_counter() < deadline:
            time.sleep(POLL_SECONDS)
        return time.perf_counter()


@contextmanager
def sink_process(received: list[str]) -> Iterator[Sink]:
    """A started sink; the Message-IDs it got are put into `received` when the block ends."""
    context = multiprocessing.get_context("spawn")
    port, count, ready, stop = free_port(), context.Value("i", 0), context.Event(), context.Event()
    mine, theirs = context.Pipe()
    process = context.Process(target=_run_sink, args=(port, count, ready, stop, theirs), daemon=True)
    process.start()
    if not ready.wait(30):
        process.kill()
        raise RuntimeError("the sink did not start")
    try:
        yield Sink(port, count)
    finally:
        stop.set()
        received.extend(mine.recv() if mine.poll(60) else [])
        process.join(30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the helpdesk ---------------------------------------------------------------------------------

def write_config(folder: Path, relay_port: int) -> Path:
    config = folder / "settings.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{folder / "postdesk.db"}"\n\n'
        f'[smtp]\nlisten = "127.0.0.1:{free_port()}"\nhostname = "postdesk.bench"\n\n'
        '[helpdesk]\ndomains = ["example.com"]\ndefault_group = "Support"\ndefault_address = "support@example.com"\n\n'
        f'[relay]\nhost = "127.0.0.1"\nport = {relay_port}\n\n'
        '[logging]\nlevel = "WARNING"\n')
    return config


def prepare(config: Path) -> tuple[Database, int, int]:
    """A fresh database with the default group, a worker in it, and one ticket with one recipient."""
    settings = load_settings(config)
    db = open_database(settings.database.url)
    upgrade(db)
    now = utcnow()
    first = InboundMessage(message_id="<first@customer.test>", sender=CUSTOMER, subject="Printer on fire",
                           envelope=Envelope("bench"), raw=b"", to=(Address("support@example.com"),),
                           text="Help, please.")
    with db.write() as session:
        group = ensure_default_group(session, settings.helpdesk)
        add_worker(session, WORKER.email, WORKER.name, [group.name])
        ticket = open_ticket(session, first, group, inbox_of(session, group), now)
        add_recipients(session, ticket, [CUSTOMER])
        store_message(session, ticket, first, verified=True, now=now)
        worker_id = session.scalars(select(Worker.id).where(Worker.email == WORKER.email)).one()
        return db, ticket.id, worker_id


def queue_replies(db: Database, out: Outbound, ticket_id: int, worker_id: int, n: int) -> None:
    """N worker answers, each filed and queued in its own transaction."""
    for number in range(n):
        answer = InboundMessage(message_id=f"<answer-{number}@corp.test>", sender=WORKER,
                                subject="Re: Printer on fire", envelope=Envelope("bench"), raw=b"",
                                in_reply_to=("<first@customer.test>",),
                                text=f"Hi Alice, answer number {number}: unplug it.\n\n-- \nJane\n")
        with db.write() as session:
            ticket, worker = session.get(Ticket, ticket_id), session.get(Worker, worker_id)
            assert ticket is not None and worker is not None
            answer_as_worker(session, out, ticket, worker, answer, utcnow())


@contextmanager
def postdesk_serve(config: Path) -> Iterator[Callable[[], int]]:
    """`postdesk serve` listening; yields a function that stops it with SIGTERM and returns its exit code."""
    log = config.parent / "serve.log"
    with log.open("ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "workers", "--config", str(config), "serve"],
                                   stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    port = load_settings(config).smtp.port
    deadline = time.monotonic() + 60
    while not _listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"postdesk serve did not start:\n{log.read_text()}")
        time.sleep(0.05)

    def stop() -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(120)

    try:
        yield stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# --- the runs -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One way of delivering N mails: how long it took, and which Message-IDs the sink got."""

    seconds: float
    received: list[str]
    expected: list[str]
    problems: tuple[str, ...] = ()

    @property
    def rate(self) -> float:
        return len(self.expected) / self.seconds

    def check(self) -> list[str]:
        """Every expected mail exactly once, nothing else."""
        counts = Counter(self.received)
        missing = [i for i in self.expected if counts[i] == 0]
        doubled = [i for i in self.expected if counts[i] > 1]
        strangers = set(counts) - set(self.expected)
        found = [f"{len(missing)} missing"] if missing else []
        found += [f"{len(doubled)} more than once"] if doubled else []
        found += [f"{len(strangers)} not expected"] if strangers else []
        return found + list(self.problems)


@dataclass(frozen=True)
class Queued:
    mail_from: str
    rcpt_tos: list[str]
    message_id: str
    raw: bytes


def run_outbox(folder: Path, n: int) -> tuple[Run, float, Database]:
    """Queue N replies while `postdesk serve` delivers them; also returns how long queueing took."""
    received: list[str] = []
    with sink_process(received) as sink:
        config = write_config(folder, sink.port)
        db, ticket_id, worker_id = prepare(config)
        with postdesk_serve(config) as stop:
            started = time.perf_counter()
            queue_replies(db, Outbound.from_settings(load_settings(config)), ticket_id, worker_id, n)
            queued = time.perf_counter() - started
            finished = sink.wait_for(n)
            time.sleep(0.5)  # a mail sent twice would arrive now
            exit_code = stop()
    return outbox_run(db, finished - started, received, exit_code), queued, db


def run_backlog(folder: Path, db: Database, n: int) -> Run:
    """The same mails set back to queued, as after a smarthost outage; a fresh `postdesk serve` delivers them.

    The clock starts when it listens (its outbox thread starts with the gateway).
    """
    with db.write() as session:
        session.execute(update(OutboxItem).values(state=OutboxState.QUEUED, attempts=0, sent_at=None))
    received: list[str] = []
    with sink_process(received) as sink:
        with postdesk_serve(write_config(folder, sink.port)) as stop:
            started = time.perf_counter()
            finished = sink.wait_for(n)
            time.sleep(0.5)
            exit_code = stop()
    return outbox_run(db, finished - started, received, exit_code)


def outbox_run(db: Database, seconds: float, received: list[str], exit_code: int) -> Run:
    """The run as the outbox saw it: every item should be sent, and serve should have stopped cleanly."""
    with db.read() as session:
        states = session.execute(select(OutboxItem.message_id, OutboxItem.state).order_by(OutboxItem.id)).all()
    unsent = sum(1 for _, state in states if state is not OutboxState.SENT)
    problems = ([f"{unsent} not marked sent"] if unsent else []) + ([f"serve exited {exit_code}"] if exit_code else [])
    return Run(seconds, received, [message_id for message_id, _ in states], tuple(problems))


def queued_mails(db: Database) -> list[Queued]:
    with db.read() as session:
        rows = session.execute(select(OutboxItem.mail_from, OutboxItem.rcpt_tos, OutboxItem.message_id,
                                      OutboxItem.raw).order_by(OutboxItem.id)).all()
    return [Queued(*row) for row in rows]


def run_direct(mails: list[Queued]) -> Run:
    """The same messages straight to a fresh sink over one smtplib connection."""
    received: list[str] = []
    with sink_process(received) as sink:
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", sink.port, local_hostname="postdesk.bench", timeout=60) as client:
            for mail in mails:
                client.sendmail(mail.mail_from, mail.rcpt_tos, mail.raw)
        finished = sink.wait_for(len(mails))
    return Run(finished - started, received, [m.message_id for m in mails])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="how many worker replies (default 5000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="postdesk-relay-") as folder:
        outbox, queued_seconds, db = run_outbox(Path(folder), args.n)
        backlog = run_backlog(Path(folder), db, args.n)
        mails = queued_mails(db)
        db.dispose()
    direct = run_direct(mails)
    print(f"N={args.n}: `postdesk serve` (its outbox thread) on SQLite; each sink an aiosmtpd in its own process")
    print(f"  replies queued (answer_as_worker)  {args.n / queued_seconds:7.0f} msg/s  ({queued_seconds:.2f} s)")
    print(f"  outbox, end to end                 {outbox.rate:7.0f} msg/s  ({outbox.seconds:.2f} s: first queued"
          " -> all at the sink)")
    print(f"  outbox, a queued backlog           {backlog.rate:7.0f} msg/s  ({backlog.seconds:.2f} s: serve"
          " listening -> all at the sink)")
    print(f"  smtplib straight to the sink       {direct.rate:7.0f} msg/s  ({direct.seconds:.2f} s, one connection)")
    print(f"  ratio to smtplib: end to end {outbox.rate / direct.rate:.2f}, backlog {backlog.rate / direct.rate:.2f}")
    failed = False
    for name, run in (("end to end", outbox), ("backlog", backlog), ("smtplib", direct)):
        problems = run.check()
        failed |= bool(problems) or len(run.expected) != args.n
        print(f"  check {name}: {len(run.received)} received; " + ("; ".join(problems) or "each exactly once"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
