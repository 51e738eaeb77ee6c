"""Loop benchmark: how many mails two mail loops make before loop protection stops them.

    python bench/loops.py --minutes 10 [--cap N]

Two scenarios run side by side for the whole duration, each on real `postdesk serve` processes
(fresh SQLite databases, fast relay retries, `[helpdesk] max_mails_per_hour` = the cap, 20 unless
`--cap` is given):

A, two helpdesks: daemons A (support@a.test) and B (support@b.test), each the other's smarthost.
B's helpdesk address writes a first, unmarked mail to A (a ticket forwarded by a careless rule);
whatever they answer each other goes on. Counted: what each daemon's outbox handed to the other.

B, careless auto-responders: one daemon whose smarthost is an aiosmtpd server in this process, a
worker jane@corp.test (group Support) and a customer alice@customer.test who opens a ticket. The
smarthost answers every mail to Alice or Jane at once, From that person, to the mail's Reply-To,
threaded (In-Reply-To), with no automatic-mail header: the worst kind. Counted: what the smarthost
received, each mail matched to its outbox row (ticket, purpose) by Message-ID.

Printed: mails per party per minute and in total, per (ticket, address) the most within any hour,
the cap, the workers' "Mail held" alarms and the mail_cap audit entries. The exit code is 1 when an
address got more than the cap's mails about one ticket within an hour (alarms are not counted).

Figures (2026-11-30, `--minutes 10`, cap 20, SQLite, exit code 0): A, two helpdesks: A got 1 mail
(B's rule's), B got 1 (A's acknowledgement, marked auto-replied, which B does not answer); all in
minute 0, nothing after. B, auto-responders: Alice got 20 (1 acknowledgement + 19 relayed replies),
Jane 20 notifications + 2 "Mail held" alarms (one per held address), the helpdesk 41 (Alice's first
and 40 auto-answers); all within the first ~21 s (about one mail a second), minutes 1-9 zero. Both
(ticket, address) pairs at exactly 20; mail_cap audited once each for Alice and Jane. The alarms
carry no Reply-To, so the responders (which answer to Reply-To) leave them alone; a responder
answering them to From instead changed nothing (a 2-minute run).
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

# `python bench/loops.py` puts bench/ first on sys.path, where bench/spam.py would hide the spam package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from core.settings import load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
READY_LINE = b"postdesk: listening on"
ALARM = "mail_cap"  # the purpose of the workers' "Mail held" alarm, and the audit action of a held address
ALICE, JANE = "alice@customer.test", "jane@corp.test"
DESK_B_ADDRESS = "support@example.com"
SETTLE_SECONDS = 3.0  # after the run: what is in flight still arrives and is counted (in its minute)


# --- real daemons -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_settings(folder: Path, *, domain: str, address: str, port: int, relay_port: int,
                   cap: int | None) -> Path:
    """A settings file: the shipped defaults but its own database and ports, fast relay retries, the cap."""
    folder.mkdir(parents=True, exist_ok=True)
    cap_line = f"max_mails_per_hour = {cap}\n" if cap is not None else ""
    path = folder / "settings.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{folder / "postdesk.db"}"\n\n'
        f'[smtp]\nlisten = "127.0.0.1:{port}"\nhostname = "postdesk.{domain}"\n\n'
        f'[helpdesk]\ndomains = ["{domain}"]\ndefault_group = "Support"\ndefault_address = "{address}"\n{cap_line}\n'
        f'[relay]\nhost = "127.0.0.1"\nport = {relay_port}\ntimeout_seconds = 5\n'
        'retry_initial_seconds = 0.2\nretry_max_seconds = 1\n\n'
        '[logging]\nlevel = "INFO"\n')
    return path


@dataclass
class Daemon:
    """A real `postdesk serve` process, started until its ready line, stopped with SIGTERM."""

    name: str
    config: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.config.parent / "daemon.log"

    def start(self) -> Daemon:
        self.process = subprocess.Popen([sys.executable, "-m", "workers", "--config", str(self.config), "serve"],
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            if READY_LINE in self.log.read_bytes():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: serve did not listen:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            print(f"{self.name}: did not stop within 30 s of SIGTERM; killed", file=sys.stderr)
            self.process.kill()
            self.process.wait()

    def send(self, raw: bytes, mail_from: str, rcpt_to: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
            client.sendmail(mail_from, [rcpt_to], raw)

    def cli(self, *args: str) -> Any:
        """Run a `postdesk ... --json` command against this daemon's database."""
        done = subprocess.run([sys.executable, "-m", "workers", "--config", str(self.config), *args],
                              capture_output=True, cwd=ROOT, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: postdesk {' '.join(args)}: {done.stderr.decode()}")
        return json.loads(done.stdout) if "--json" in args else None


@contextmanager
def running(daemons: list[Daemon]) -> Iterator[list[Daemon]]:
    """Start every daemon; stop each (SIGTERM) however the run ends."""
    try:
        for daemon in daemons:
            daemon.start()
        yield daemons
    finally:
        for daemon in daemons:
            daemon.stop()


def make_mail(sender: str, to: str, subject: str, body: str, in_reply_to: str | None = None) -> bytes:
    """A plain mail as a person's client writes it: no automatic-mail header of any kind."""
    mail = EmailMessage(policy=SMTP)
    mail["From"], mail["To"], mail["Subject"] = sender, to, subject
    mail["Date"] = format_datetime(datetime.now().astimezone())
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    if in_reply_to:
        mail["In-Reply-To"] = mail["References"] = in_reply_to
    mail.set_content(body)
    return mail.as_bytes()


# --- what was received ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    """One mail a party received: when (seconds since the start), to which address, about what."""

    at: float
    party: str
    address: str
    ticket: str | None  # the sending helpdesk's mask; None for mail a person (or the bench) wrote
    purpose: str


def outbox_deliveries(daemon: Daemon, party: str, started: float) -> list[Delivery]:
    """Each recipient of each mail this daemon's outbox delivered (to `party`), as a Delivery."""
    rows = daemon.cli("outbox", "--state", "sent", "--json")
    return [Delivery(datetime.fromisoformat(row["sent"]).timestamp() - started, party, rcpt, row["ticket"],
                     row["purpose"]) for row in rows for rcpt in row["recipients"]]


def held_audits(daemon: Daemon) -> list[str]:
    """`ticket: address` for every mail_cap audit entry: an address the cap held mail for."""
    found = []
    for ticket in daemon.cli("tickets", "--status", "all", "--json"):
        history = daemon.cli("show", ticket["mask"], "--history", "--json")["history"]
        found += [f"{ticket['mask']}: {e['detail']}" for e in history if e["action"] == ALARM]
    return found


def most_within_an_hour(times: Iterable[float]) -> int:
    """The largest number of these moments that fall within any 3600 seconds."""
    ordered, first, most = sorted(times), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 3600:
            first += 1
        most = max(most, last - first + 1)
    return most


# --- scenario B: the careless auto-responders behind the smarthost -----------------------------------

@dataclass
class Responder:
    """The smarthost of scenario B, and behind it Alice's and Jane's unmarked auto-responders.

    The SMTP handler only queues what it gets (no blocking work in handle_DATA); a thread answers.
    """

    desk: Daemon
    started: float
    people: tuple[str, ...] = (ALICE, JANE)
    received: list[tuple[float, list[str], str]] = field(default_factory=list)  # (at, rcpts, Message-ID)
    sent: list[tuple[float, str, str]] = field(default_factory=list)  # what the responders wrote: (at, to, why)
    unanswerable: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    inbox: queue.Queue[tuple[float, list[str], bytes] | None] = field(default_factory=queue.Queue)
    answering: bool = True

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.inbox.put((time.time() - self.started, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 kept"

    def run(self) -> None:
        while (item := self.inbox.get()) is not None:
            at, rcpts, raw = item
            mail = message_from_bytes(raw, policy=default)
            self.received.append((at, rcpts, str(mail["Message-ID"])))
            for person in (p for p in self.people if p in rcpts):
                if self.answering:
                    self.answer(person, mail)

    def answer(self, person: str, mail: Any) -> None:
        """Answer at once: to the Reply-To, threaded, From this person, nothing saying it is automatic."""
        if mail["Reply-To"] is None:
            self.unanswerable[person] += 1
            return
        to = mail["Reply-To"].addresses[0].addr_spec
        raw = make_mail(person, str(mail["Reply-To"]), f"Re: {mail['Subject']}",
                        "I am away; I will read your mail later.", in_reply_to=str(mail["Message-ID"]))
        try:
            self.desk.send(raw, mail_from=person, rcpt_to=to)
            self.sent.append((time.time() - self.started, to, f"{person.partition('@')[0]}'s auto-answer"))
        except (smtplib.SMTPException, OSError) as error:
            self.refused.append(f"{person} -> {to}: {error}")


@contextmanager
def responding(responder: Responder, port: int) -> Iterator[Responder]:
    from aiosmtpd.controller import Controller

    controller = Controller(responder, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    worker = threading.Thread(target=responder.run, name="responder", daemon=True)
    controller.start()
    worker.start()
    try:
        yield responder
    finally:
        controller.stop()
        responder.inbox.put(None)
        worker.join(60)


def sink_deliveries(responder: Responder, desk: Daemon) -> list[Delivery]:
    """What the smarthost received, matched to the helpdesk's outbox by Message-ID."""
    rows = {row["message_id"]: row for row in desk.cli("outbox", "--state", "all", "--json")}
    found = []
    for at, rcpts, message_id in responder.received:
        row = rows.get(message_id, {"ticket": "?", "purpose": "not in the outbox"})
        found += [Delivery(at, rcpt, rcpt, row["ticket"], row["purpose"]) for rcpt in rcpts]
    return found


# --- the run ----------------------------------------------------------------------------------------

@dataclass
class Scenario:
    """What one scenario received, per party, and which addresses the cap held."""

    title: str
    parties: list[str]
    deliveries: list[Delivery]
    held: list[str]
    notes: list[str]


def run(folder: Path, minutes: float, cap: int | None) -> tuple[list[Scenario], int]:
    """Both scenarios at once for `minutes`; their figures, and the cap the daemons applied."""
    a_port, b_port, desk_port, sink_port = (free_port() for _ in range(4))
    desk_a = Daemon("A", write_settings(folder / "a", domain="a.test", address="support@a.test", port=a_port,
                                        relay_port=b_port, cap=cap), a_port)
    desk_b = Daemon("B", write_settings(folder / "b", domain="b.test", address="support@b.test", port=b_port,
                                        relay_port=a_port, cap=cap), b_port)
    desk = Daemon("desk", write_settings(folder / "desk", domain="example.com", address=DESK_B_ADDRESS,
                                         port=desk_port, relay_port=sink_port, cap=cap), desk_port)
    with ExitStack() as stack:
        stack.enter_context(running([desk_a, desk_b, desk]))
        desk.cli("worker", "add", JANE, "--name", "Jane Doe", "--group", "Support")
        started = time.time()
        responder = stack.enter_context(responding(Responder(desk, started), sink_port))
        desk_a.send(make_mail("Support B <support@b.test>", "support@a.test", "Fwd: printer on fire",
                              "Forwarded by rule: the printer is on fire."), "support@b.test", "support@a.test")
        desk.send(make_mail(f"Alice <{ALICE}>", DESK_B_ADDRESS, "Order 1003 never came", "Where is my parcel?"),
                  ALICE, DESK_B_ADDRESS)
        responder.sent.append((time.time() - started, DESK_B_ADDRESS, "Alice's first mail"))
        time.sleep(max(0.0, started + minutes * 60 - time.time()))
        responder.answering = False
        time.sleep(SETTLE_SECONDS)
    applied = load_settings(desk.config).helpdesk.max_mails_per_hour
    return [two_helpdesks(desk_a, desk_b, started), auto_responders(desk, responder)], applied


def two_helpdesks(desk_a: Daemon, desk_b: Daemon, started: float) -> Scenario:
    first = Delivery(0.0, "A", "support@a.test", None, "first mail (B's rule)")
    deliveries = [first, *outbox_deliveries(desk_a, "B", started), *outbox_deliveries(desk_b, "A", started)]
    return Scenario("A: two helpdesks answering each other", ["A", "B"], deliveries,
                    held_audits(desk_a) + held_audits(desk_b), [])


def auto_responders(desk: Daemon, responder: Responder) -> Scenario:
    wrote = [Delivery(at, "helpdesk", to, None, purpose) for at, to, purpose in responder.sent]
    notes = [f"{person}: {n} mails without Reply-To, not answered" for person, n in responder.unanswerable.items()]
    notes += [f"refused: {line}" for line in responder.refused[:5]]
    return Scenario("B: a helpdesk and two careless auto-responders", [ALICE, JANE, "helpdesk"],
                    sink_deliveries(responder, desk) + wrote, held_audits(desk), notes)


# --- the report -------------------------------------------------------------------------------------

def report(scenario: Scenario, minutes: float, cap: int) -> bool:
    """Print one scenario's figures; True when no address got more than the cap about one ticket."""
    print(f"\n== {scenario.title}")
    per_minute: dict[int, Counter[str]] = defaultdict(Counter)
    for d in scenario.deliveries:
        per_minute[int(d.at // 60)][d.party + (" alarm" if d.purpose == ALARM else "")] += 1
    columns = [c for p in scenario.parties for c in (p, p + " alarm")
               if c == p or any(c in row for row in per_minute.values())]
    print("minute  " + "  ".join(f"{c:>22}" for c in columns))
    for minute in range(max([math.ceil(minutes) - 1, *per_minute]) + 1):
        print(f"{minute:>6}  " + "  ".join(f"{per_minute[minute][c]:>22}" for c in columns))
    totals = Counter(c for row in per_minute.values() for c in row.elements())
    print(" total  " + "  ".join(f"{totals[c]:>22}" for c in columns))
    by_purpose = Counter((d.party, d.purpose) for d in scenario.deliveries)
    print("by purpose: " + ", ".join(f"{party} {purpose} {n}" for (party, purpose), n in sorted(by_purpose.items())))
    last = max((d.at for d in scenario.deliveries), default=0.0)
    print(f"last mail {last:.1f} s after the start")
    return verdict(scenario, cap)


def verdict(scenario: Scenario, cap: int) -> bool:
    counted: dict[tuple[str, str], list[float]] = defaultdict(list)
    for d in scenario.deliveries:
        if d.ticket is not None and d.purpose != ALARM:
            counted[(d.ticket, d.address)].append(d.at)
    most = {key: most_within_an_hour(times) for key, times in counted.items()}
    for (ticket, address), n in sorted(most.items()):
        print(f"  {ticket} -> {address}: {n} within an hour (cap {cap}){'  OVER THE CAP' if n > cap else ''}")
    alarms = sum(d.purpose == ALARM for d in scenario.deliveries)
    print(f"alarms to workers: {alarms}; mail_cap audits: {scenario.held or 'none'}")
    for note in scenario.notes:
        print(f"note: {note}")
    over = {key: n for key, n in most.items() if n > cap}
    if over:
        purposes = Counter((d.ticket, d.address, d.purpose) for d in scenario.deliveries
                           if (d.ticket, d.address) in over)
        print(f"VERDICT: LOOP NOT STOPPED BY THE CAP: {over}; by purpose: {dict(purposes)}")
    else:
        print(f"VERDICT: ok, every (ticket, address) <= cap {cap}")
    return not over


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10, help="how long both scenarios run (default 10)")
    parser.add_argument("--cap", type=int, help="[helpdesk] max_mails_per_hour (default: postdesk's, 20)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="postdesk-loops-") as folder:
        scenarios, cap = run(Path(folder), args.minutes, args.cap)
    print(f"\n{args.minutes:g} minutes, cap {cap} mails per ticket and address per hour")
    results = [report(scenario, args.minutes, cap) for scenario in scenarios]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
