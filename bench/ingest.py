"""Ingest benchmark: real mail over SMTP into `postdesk serve`, against a bare aiosmtpd that only says 250.

    python bench/ingest.py --n 5000 --k 1 --k 8

For each K it sends the same N corpus messages over K concurrent SMTP sessions, first to an aiosmtpd
server (in its own process) whose handler only returns 250, then to a fresh `postdesk serve`.
`--spool-only` sends them a third time, to the gateway and spool writer of `serve` alone (no runner
filing meanwhile): the most durable 250s this machine gives before any filing competes with them. The bare
rate runs from the first send to the last 250; ours from the first send until the last acknowledged
message is committed as a ticket message (or quarantined). Afterwards it checks that every acknowledged
message is in the database and the spool is empty, and exits 1 when that check fails.
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
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before bench/, whose spam.py would hide the spam package (--profile imports it)
SHARED = ROOT.parent / "shared"
DEFAULT_CORPUS = SHARED / "corpora" / "spam" / "spamassassin"
MAIL_FROM = "bench@outside.test"
RCPT_TO = "support@example.com"
MAX_MESSAGE_SIZE = 26214400  # the shipped default, so no corpus mail is refused for size
MAX_LINE = 998  # RFC 5321 4.5.3.1.6, without the CRLF
FILED_TIMEOUT_SECONDS = 600.0
DEPTH_SECONDS = 0.25
POLL_SECONDS = 0.02
_MSGID = re.compile(rb"<[^<>\s]+>")
_LINE_END = re.compile(rb"\r?\n")
_MSGID_HEADER = re.compile(rb"message-id\s*:", re.IGNORECASE)


# --- the messages ---------------------------------------------------------------------------------

def load_corpus(folder: Path) -> list[bytes]:
    """Every message file below the folder, in a stable order, without a leading mbox `From ` line.

    Files with a line longer than SMTP allows are left out: any server refuses them with 500.
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    messages = (_strip_mbox_line(p.read_bytes()) for p in files)
    return [m for m in messages if max(map(len, m.split(b"\r\n"))) <= MAX_LINE]


def _strip_mbox_line(raw: bytes) -> bytes:
    """Also ends every line in CRLF: smtplib sends bytes as they are, and SMTP wants CRLF."""
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    return _LINE_END.sub(b"\r\n", raw)


def prepare_messages(corpus: list[bytes], n: int) -> list[bytes]:
    """N messages, each with exactly one Message-ID none of the others has.

    A file's own id is kept the first time it is seen, so the corpus's threads still thread; a reused
    file, or one whose id is missing or already taken, gets a fresh id. One id per message means the
    daemon files every one of them: none may be skipped as a duplicate, so the count check is exact.
    """
    run = uuid.uuid4().hex[:12]
    seen: set[bytes] = set()
    prepared = []
    for i in range(n):
        headers, body = _split(corpus[i % len(corpus)])
        own = _message_id(headers)
        if own is None or own in seen:
            own = f"<bench-{run}-{i}@bench.postdesk.invalid>".encode()
        seen.add(own)
        prepared.append(_with_message_id(headers, own) + body)
    return prepared


def _split(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header lines (with their line ends) and the rest, starting at the blank line."""
    lines = raw.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line in (b"\r\n", b"\n"):
            return lines[:index], b"".join(lines[index:])
    return lines, b""


def _message_id(headers: list[bytes]) -> bytes | None:
    """The first <id> of the first Message-ID field, read the way mailgate/parse.py reads it."""
    for value in _fields(headers, keep=False):
        found = _MSGID.search(value)
        if found:
            return found.group(0)
    return None


def _fields(headers: list[bytes], keep: bool) -> Iterator[bytes]:
    """Message-ID fields (keep=False) or every other line (keep=True), continuation lines included."""
    inside = False
    for line in headers:
        if not line[:1].isspace():
            inside = _MSGID_HEADER.match(line) is not None
        if inside != keep:
            yield line


def _with_message_id(headers: list[bytes], message_id: bytes) -> bytes:
    end = b"\r\n" if headers and headers[0].endswith(b"\r\n") else b"\n"
    return b"Message-ID: " + message_id + end + b"".join(_fields(headers, keep=True))


# --- the clients ----------------------------------------------------------------------------------

@dataclass
class Sent:
    """What K sessions achieved: how many got a 250, what failed, and when sending began and ended."""

    acknowledged: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, ok: bool, error: str = "") -> None:
        with self.lock:
            if ok:
                self.acknowledged += 1
            else:
                self.errors.append(error)


def send_all(port: int, messages: list[bytes], k: int) -> Sent:
    """Send every message over K sessions, one thread each; all connect first, then start together."""
    sent = Sent()
    go = threading.Barrier(k + 1)
    threads = [threading.Thread(target=_session, args=(port, messages[i::k], go, sent)) for i in range(k)]
    for thread in threads:
        thread.start()
    go.wait()
    sent.started = time.perf_counter()
    for thread in threads:
        thread.join()
    sent.finished = time.perf_counter()
    return sent


def _session(port: int, share: list[bytes], go: threading.Barrier, sent: Sent) -> None:
    """One SMTP connection reused for its whole share; a dropped connection is reopened once per message."""
    client = smtplib.SMTP("127.0.0.1", port, timeout=120)
    go.wait()
    for raw in share:
        try:
            client.sendmail(MAIL_FROM, [RCPT_TO], raw)
            sent.count(True)
        except smtplib.SMTPServerDisconnected as exc:
            sent.count(False, f"disconnected: {exc}")
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=120)
            except OSError as reconnect:
                sent.count(False, f"could not reconnect: {reconnect}")
                return
        except (smtplib.SMTPException, OSError) as exc:
            sent.count(False, f"{type(exc).__name__}: {exc}")
    client.quit()


# --- the servers ----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Accept:
    """The bare handler: every message is answered 250 and forgotten."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


def _run_bare(port: int, ready: multiprocessing.synchronize.Event, stop: multiprocessing.synchronize.Event) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(_Accept(), hostname="127.0.0.1", port=port, enable_SMTPUTF8=True,
                            data_size_limit=MAX_MESSAGE_SIZE)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


@contextmanager
def bare_server() -> Iterator[int]:
    """An aiosmtpd Controller in its own process, so it does not share the GIL with the clients."""
    with _server_process("bare aiosmtpd server", _run_bare, lambda port: (port,)) as port:
        yield port


@contextmanager
def _server_process(name: str, target: Callable[..., None], args: Callable[[int], tuple[object, ...]],
                    start_seconds: float = 60) -> Iterator[int]:
    """Run target(*args(port), ready, stop) in a spawned process on a free port; yields the port once it is ready."""
    context = multiprocessing.get_context("spawn")
    port, ready, stop = free_port(), context.Event(), context.Event()
    process = context.Process(target=target, args=(*args(port), ready, stop), daemon=True)
    process.start()
    deadline = time.monotonic() + start_seconds
    while not ready.wait(0.05):
        if not process.is_alive() or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{name} did not start")
    try:
        yield port
    finally:
        stop.set()
        process.join(60)


def _write_config(folder: Path, db_url: str, port: int) -> Path:
    """The settings of a benchmarked daemon: its database, a port, the helpdesk address the mail goes to."""
    config = folder / "settings.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n\n'
        f'[smtp]\nlisten = "127.0.0.1:{port}"\nhostname = "postdesk.bench"\nmax_message_size = {MAX_MESSAGE_SIZE}\n\n'
        '[helpdesk]\ndomains = ["example.com"]\ndefault_group = "Support"\ndefault_address = "support@example.com"\n\n'
        '[logging]\nlevel = "WARNING"\n')
    return config


@contextmanager
def postdesk_server(folder: Path, db_url: str) -> Iterator[tuple[int, Callable[[], int]]]:
    """A real `postdesk serve` on a free port; yields the port and a function that stops it (SIGTERM)."""
    port = free_port()
    config = _write_config(folder, db_url, port)
    log = folder / "serve.log"
    with log.open("ab") as handle:
        process = subprocess.Popen([sys.executable, "-m", "workers", "--config", str(config), "serve"],
                                   stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)

    def stop() -> int:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(120)

    try:
        _wait_listening(process, port, log)
        yield port, stop
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _run_spool_only(config: Path, ready: multiprocessing.synchronize.Event,
                    stop: multiprocessing.synchronize.Event) -> None:
    """What `postdesk serve` accepts mail with (mailgate.smtp, mailgate.spool), and nothing else."""
    import asyncio

    from core.helpdesk_addresses import OwnAddresses
    from core.settings import load_settings
    from mailgate.daemon import prepare_database
    from mailgate.smtp import Gateway, GatewayHandler
    from mailgate.spool import SpoolWriter

    settings = load_settings(config)
    db = prepare_database(settings)

    async def serve() -> None:
        writer = SpoolWriter(db)
        gateway = Gateway(GatewayHandler(OwnAddresses.from_settings(settings.helpdesk), writer), settings.smtp.host,
                          settings.smtp.port, settings.smtp.hostname, settings.smtp.max_message_size)
        await gateway.start()
        ready.set()
        await asyncio.to_thread(stop.wait)
        await gateway.stop()
        await asyncio.to_thread(writer.close)

    try:
        asyncio.run(serve())
    finally:
        db.dispose()


@contextmanager
def spool_only_server(folder: Path, db_url: str) -> Iterator[int]:
    """The gateway and spool writer of `serve` in a process of their own, on a free port; yields the port."""
    with _server_process("the spool-only gateway", _run_spool_only,
                         lambda port: (_write_config(folder, db_url, port),)) as port:
        yield port


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postdesk serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"postdesk serve did not listen:\n{log.read_text()}")


# --- the databases --------------------------------------------------------------------------------

@contextmanager
def fresh_database(base_url: str | None, folder: Path) -> Iterator[str]:
    """An empty database for one run: a new SQLite file, or a new database on the given server."""
    if base_url is None or make_url(base_url).get_backend_name() == "sqlite":
        name = f"bench-{uuid.uuid4().hex[:8]}.db"
        parent = Path(make_url(base_url).database or folder).parent if base_url else folder
        yield f"sqlite:///{(parent / name).resolve()}"
        return
    name = f"postdesk_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass(frozen=True)
class Counts:
    messages: int
    quarantined: int
    spooled: int

    @property
    def present(self) -> int:
        return self.messages + self.quarantined


class CountReader:
    """Counts rows without writing: SQLite is opened read-only, so polling cannot disturb the daemon."""

    def __init__(self, db_url: str) -> None:
        url = make_url(db_url)
        if url.get_backend_name() == "sqlite":
            url = make_url(f"sqlite:///file:{url.database}?mode=ro&uri=true")
        self._engine = create_engine(url)

    def counts(self) -> Counts:
        with self._engine.connect() as conn:
            row = conn.execute(text("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM quarantine),"
                                    " (SELECT count(*) FROM spool)")).one()
        return Counts(*row)

    def wait_until_present(self, expected: int, timeout: float) -> tuple[float, Counts]:
        """Poll until `expected` messages are filed; gives up early when the spool is empty but some are missing."""
        deadline = time.perf_counter() + timeout
        stalled_since: float | None = None
        while True:
            counts, now = self.counts(), time.perf_counter()
            if counts.present >= expected or now > deadline:
                return now, counts
            stalled_since = (stalled_since or now) if counts.spooled == 0 else None
            if stalled_since is not None and now - stalled_since > 5.0:
                return now, counts
            time.sleep(POLL_SECONDS)

    def close(self) -> None:
        self._engine.dispose()


# --- one comparison -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    k: int
    bare_rate: float
    accept_rate: float
    filed_rate: float
    acknowledged: int
    counts: Counts
    clean_exit: bool
    errors: tuple[str, ...]
    spool_depth: str = ""
    spool_only_rate: float | None = None  # --spool-only: the 250s of the gateway alone, no runner filing
    spool_only_missing: int = 0  # acknowledged there but not in its spool

    @property
    def ratio(self) -> float:
        return self.filed_rate / self.bare_rate if self.bare_rate else 0.0

    @property
    def all_present(self) -> bool:
        return self.counts.present == self.acknowledged and self.counts.spooled == 0

    @property
    def passed(self) -> bool:
        """Every acknowledged message present, none refused, and the daemon stopped cleanly."""
        return (self.all_present and not self.errors and self.acknowledged > 0 and self.clean_exit
                and not self.spool_only_missing)


def run_bare(messages: list[bytes], k: int) -> float:
    with bare_server() as port:
        sent = send_all(port, messages, k)
    return sent.acknowledged / (sent.finished - sent.started)


class SpoolDepth:
    """The spool's depth over a run, sampled every DEPTH_SECONDS from a reader of its own."""

    def __init__(self, db_url: str) -> None:
        self._reader = CountReader(db_url)
        self._stop = threading.Event()
        self.samples: list[tuple[float, int]] = []
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._started = time.perf_counter()
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(DEPTH_SECONDS):
            self.samples.append((time.perf_counter() - self._started, self._reader.counts().spooled))

    def stop(self) -> None:
        """Stop sampling; again is nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self._reader.close()

    def describe(self) -> str:
        if not self.samples:
            return "spool depth: no sample"
        deepest = max(self.samples, key=lambda sample: sample[1])
        every = max(1, len(self.samples) // 8)
        trail = " ".join(f"{at:.1f}s:{depth}" for at, depth in self.samples[::every])
        return f"spool depth: at most {deepest[1]} (at {deepest[0]:.1f}s); over the run {trail}"


def run_postdesk(messages: list[bytes], k: int, db_url: str, folder: Path) -> tuple[Sent, float, Counts, int, str]:
    """Send to a fresh daemon; returns the sends, the moment the last one was filed, the counts, the exit code,
    and the spool's depth over the run."""
    with postdesk_server(folder, db_url) as (port, stop):
        reader = CountReader(db_url)
        depth = SpoolDepth(db_url)
        try:
            sent = send_all(port, messages, k)
            filed_at, _ = reader.wait_until_present(sent.acknowledged, FILED_TIMEOUT_SECONDS)
            depth.stop()
            exit_code = stop()
            counts = reader.counts()  # after the daemon drained and stopped: the final state
        finally:
            depth.stop()
            reader.close()
    return sent, filed_at, counts, exit_code, depth.describe()


def run_spool_only(messages: list[bytes], k: int, base_url: str | None, folder: Path) -> tuple[float, int]:
    """The rate of 250s from the gateway and spool writer alone, and how many acknowledged mails its spool lacks."""
    run_folder = Path(tempfile.mkdtemp(prefix=f"spool-k{k}-", dir=folder))
    with fresh_database(base_url, run_folder) as db_url:
        with spool_only_server(run_folder, db_url) as port:
            sent = send_all(port, messages, k)
        reader = CountReader(db_url)
        try:
            spooled = reader.counts().spooled
        finally:
            reader.close()
    return sent.acknowledged / (sent.finished - sent.started), max(0, sent.acknowledged - spooled)


def compare(messages: list[bytes], k: int, base_url: str | None, folder: Path, spool_only: bool = False) -> Result:
    bare = run_bare(messages, k)
    run_folder = Path(tempfile.mkdtemp(prefix=f"k{k}-", dir=folder))
    with fresh_database(base_url, run_folder) as db_url:
        sent, filed_at, counts, exit_code, depth = run_postdesk(messages, k, db_url, run_folder)
    alone, missing = run_spool_only(messages, k, base_url, folder) if spool_only else (None, 0)
    return Result(k, bare, sent.acknowledged / (sent.finished - sent.started),
                  sent.acknowledged / (filed_at - sent.started), sent.acknowledged, counts, exit_code == 0,
                  tuple(sent.errors), depth, alone, missing)


# --- the report -----------------------------------------------------------------------------------

def print_check(result: Result) -> None:
    c = result.counts
    verdict = "ok" if result.all_present else "MISSING MAIL"
    print(f"K={result.k}: acknowledged {result.acknowledged}, present {c.present} "
          f"(messages {c.messages} + quarantine {c.quarantined}), spool {c.spooled}: {verdict}"
          + ("" if result.clean_exit else "; postdesk serve did not exit cleanly")
          + (f"; {len(result.errors)} refused" if result.errors else ""), flush=True)
    print(f"  {result.spool_depth}")
    if result.spool_only_missing:
        print(f"  spool only: {result.spool_only_missing} acknowledged mails MISSING from the spool")
    for error in result.errors[:5]:
        print(f"  refused: {error}")


def print_table(results: list[Result], n: int) -> None:
    print(f"\nN={n}")
    print(f"{'K':>3} {'bare msg/s':>11} {'postdesk msg/s':>15} {'ratio':>6} {'(250s msg/s)':>13} {'250s/bare':>10}")
    for r in results:
        print(f"{r.k:>3} {r.bare_rate:>11.0f} {r.filed_rate:>15.0f} {r.ratio:>6.2f} {r.accept_rate:>13.0f}"
              f" {r.accept_rate / r.bare_rate if r.bare_rate else 0:>10.2f}")
    for r in results:
        if r.spool_only_rate is not None:
            print(f"K={r.k}, spool only (the gateway and spool writer, no runner filing): {r.spool_only_rate:.0f} "
                  f"250s/s, {r.spool_only_rate / r.bare_rate if r.bare_rate else 0:.2f} of bare")


PROFILE_CHUNK = 64  # as the daemon's runner claims them


# Parts of the filing that are no database work, timed inside it: where each function is found (a module, then
# attributes), and what the report calls the part. No part calls another, so none is counted twice.
FILING_PARTS = ((("spam.filter", "tokenize"), "spam tokens"),
                (("core.compose", "Templates", "render"), "outgoing mail composed"),
                (("core.compose", "Outgoing", "build"), "outgoing mail composed"),
                (("email.message", "EmailMessage", "as_bytes"), "outgoing mail composed"))


@contextmanager
def _timed_parts() -> Iterator[dict[str, float]]:
    """CPU spent in FILING_PARTS meanwhile, by report name; each function is wrapped where it is found, and
    put back after."""
    import importlib

    spent: dict[str, float] = {}
    wrapped = []
    for (module_name, *path), label in FILING_PARTS:
        owner = importlib.import_module(module_name)
        for name in path[:-1]:
            owner = getattr(owner, name)
        name = path[-1]
        original = getattr(owner, name)

        def timed(*args: object, _original: Callable[..., object] = original, _label: str = label,
                  **kwargs: object) -> object:
            began = time.process_time()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.process_time() - began

        setattr(owner, name, timed)
        wrapped.append((owner, name, original))
    try:
        yield spent
    finally:
        for owner, name, original in wrapped:
            setattr(owner, name, original)


def profile(messages: list[bytes], base_url: str | None, folder: Path) -> tuple[float, float, int, dict[str, float]]:
    """CPU per mail of this process, parsing and filing apart (ms), over a fresh database; how many filed;
    and the CPU per mail of FILING_PARTS, part of the filing's.

    The mail is spooled first (not timed), then filed as the daemon's runner does, chunk by chunk:
    parse each mail, then file the chunk (mailgate.runner.SpoolRunner.file_parsed). On PostgreSQL the
    server's own CPU is not in it: only what the filing process spends.
    """
    from core.db import open_database
    from core.inbound import Envelope
    from core.schema import upgrade
    from core.settings import load_settings
    from mailgate.runner import SpoolRunner, parse_spooled

    with fresh_database(base_url, folder) as url:
        config = folder / f"profile-{uuid.uuid4().hex[:8]}.toml"
        config.write_text(f'[database]\nurl = "{url}"\n\n[web]\nlisten = ""\n', encoding="utf-8")
        settings = load_settings(config)
        db = open_database(url)
        upgrade(db)
        runner = SpoolRunner(db, settings)
        parsing = filing = 0.0
        with _timed_parts() as parts:
            for start in range(0, len(messages), PROFILE_CHUNK):
                chunk = [(raw, Envelope("smtp", f"sender{start + n}@outside.test", (RCPT_TO,)))
                         for n, raw in enumerate(messages[start:start + PROFILE_CHUNK])]
                spooled = runner.spool_claimed(chunk)
                began = time.process_time()
                parsed = [parse_spooled(item) for item in spooled]
                parsed_at = time.process_time()
                runner.file_parsed(parsed)
                parsing, filing = parsing + parsed_at - began, filing + time.process_time() - parsed_at
        db.dispose()
    done = runner.stats.filed + runner.stats.quarantined + runner.stats.duplicates
    per_mail = {label: seconds / len(messages) * 1000 for label, seconds in parts.items()}
    return parsing / len(messages) * 1000, filing / len(messages) * 1000, done, per_mail


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="messages per run (default 5000)")
    parser.add_argument("--k", type=int, action="append", help="concurrent sessions; repeatable (default 1 and 8)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help=f"message files (default {DEFAULT_CORPUS})")
    parser.add_argument("--database-url", default=None,
                        help="where to create each run's fresh database (default: a SQLite file in a temp folder); "
                             "for PostgreSQL, a server URL on which a database is created and dropped per run")
    parser.add_argument("--profile", action="store_true",
                        help="only the filing's CPU per mail beside the parsing's, in one process (no SMTP)")
    parser.add_argument("--spool-only", action="store_true",
                        help="also send each K's mail to the gateway and spool writer alone (no runner filing): "
                             "the ceiling of the 250s on this machine")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    corpus = load_corpus(args.corpus) if args.corpus.is_dir() else []
    if not corpus:
        print(f"ingest benchmark: no corpus at {args.corpus} (it lives in ../shared, next to the project)",
              file=sys.stderr)
        return 2
    messages = prepare_messages(corpus, args.n)
    print(f"{len(messages)} messages from {len(corpus)} files, {sum(map(len, messages)) / 2**20:.1f} MiB", flush=True)
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as folder:
            parse_ms, file_ms, done, parts = profile(messages, args.database_url, Path(folder))
        where = make_url(args.database_url).get_backend_name() if args.database_url else "sqlite"
        print(f"{where}: CPU per mail, parsing {parse_ms:.2f} ms, filing {file_ms:.2f} ms "
              f"({file_ms / parse_ms:.1f}x parsing; target: no more than parsing); {done} of {len(messages)} filed")
        print("  of the filing, work that is no database work: "
              + ", ".join(f"{label} {ms:.2f} ms" for label, ms in parts.items())
              + f"; together {sum(parts.values()):.2f} ms ({sum(parts.values()) / parse_ms:.1f}x parsing)")
        return 0 if done == len(messages) else 1
    results = []
    with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as folder:
        for k in args.k or [1, 8]:
            results.append(compare(messages, k, args.database_url, Path(folder), args.spool_only))
            print_check(results[-1])
    print_table(results, args.n)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
