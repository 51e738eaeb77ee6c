"""Scheduler benchmark: how late a running daemon reopens 100,000 due tickets, its CPU, and the purge of 1,000,000.

    python bench/scheduler.py [--waiting 100000] [--spread 60] [--deleted 1000000 ...] [--postgres ADMIN_URL]
                              [--on sqlite --on postgresql] [--sql STATEMENT ...]
    python bench/scheduler.py --waiting 0 --deleted 100000 --deleted 1000000 \
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres --on sqlite --on postgresql

Each measurement runs on each database named by `--on` (default: PostgreSQL with `--postgres`,
else SQLite), one after the other: SQLite in a temporary file, PostgreSQL in a fresh database made
from ADMIN_URL and dropped after.

Reopening: a real `postdesk serve` runs idle on a fresh database. N waiting tickets are written with
due times spread evenly over `--spread` seconds, starting a little after the writing ends. Once all
are open, each ticket's lateness is its scheduler audit entry's time minus its due time (the entry's
time is read from the clock just before the batch that reopened it; its commit follows within
milliseconds). The daemon's CPU (its process and children, from /proc) is reported while idle with N
tickets waiting, and over the run. The exit code is 1 when a ticket is not reopened, or reopened
twice or early.

Purge: for each `--deleted` M, M deleted tickets past the retention, each with one message, every
tenth carrying one attachment shared by all of them, and one ticket that stays sharing it;
`postdesk purge` (a whole process) is timed, and checked: every deleted ticket gone, the shared
attachment kept. The data is written just before, as a bulk load would leave it (PostgreSQL has no
statistics on it yet unless autovacuum got there). `--sql` statements run after the writing and
before the purge, to try an index. A table of seconds and tickets/s by size and database follows,
with PostgreSQL's time over SQLite's and how the time grew with the size.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, make_url, select, text

ROOT = Path(__file__).resolve().parent.parent
# `python bench/scheduler.py` puts bench/ first on sys.path, where bench/spam.py would hide the spam package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "tests"))  # the bulk ticket writer the scheduler's tests use

from core.db import Database, open_database  # noqa: E402
from core.due_tickets import SCHEDULER  # noqa: E402
from core.models import AuditEntry, Blob, Status, Ticket, utcnow  # noqa: E402
from core.schema import upgrade  # noqa: E402
from testkit import _fresh_postgres_database, write_config  # noqa: E402
from ticket_rows import add_messages, add_tickets  # noqa: E402

CHUNK = 20_000  # tickets written per transaction
LEAD_SECONDS = 5.0  # the first due time is this long after the writing ends
SHARED = b"%PDF a contract every tenth ticket carries"
_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}  # the databases --on names, as printed


@contextmanager
def fresh_database(admin_url: str | None, folder: Path) -> Iterator[str]:
    if admin_url is None:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    url, drop = _fresh_postgres_database(admin_url)
    try:
        yield url
    finally:
        drop()


@contextmanager
def daemon(config: Path, log: Path) -> Iterator[int]:
    """A real `postdesk serve`, started and listening; yields its pid."""
    port = int(config.read_text().split('listen = "127.0.0.1:')[1].split('"')[0])
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "workers", "--config", str(config), "serve"],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        process.wait(60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far (the spool runner is a child)."""
    total = 0.0
    for child in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


def write_waiting(db: Database, n: int, spread: float) -> tuple[dict[int, datetime], float]:
    """N waiting tickets due evenly over `spread` seconds; returns their due times and the seconds writing took."""
    started = time.monotonic()
    with db.write() as session:  # a chunk of open tickets, timed, says how long the writing will take
        add_tickets(session, CHUNK, status=Status.OPEN, now=utcnow(), prefix="CAL")
    estimate = (time.monotonic() - started) * n / CHUNK * 1.5
    first = utcnow() + timedelta(seconds=estimate + LEAD_SECONDS)
    due = {}
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        with db.write() as session:
            ids = add_tickets(session, count, status=Status.WAITING, now=utcnow(), start=start,
                              waiting_until=lambda i, s=start: first + timedelta(seconds=spread * (s + i) / n))
        due.update({ticket_id: first + timedelta(seconds=spread * (start + i) / n) for i, ticket_id in enumerate(ids)})
    return due, time.monotonic() - started


def bench_reopen(url: str, folder: Path, n: int, spread: float) -> bool:
    config = write_config(folder, url)
    db = open_database(url)
    upgrade(db)
    with daemon(config, folder / "daemon.log") as pid:
        idle_from = cpu_seconds(pid)
        time.sleep(3)
        due, writing = write_waiting(db, n, spread)
        first, last = min(due.values()), max(due.values())
        if utcnow() >= first:
            print(f"writing took {writing:.1f}s, past the first due time: the figures include that backlog")
        idle_seconds = (first - utcnow()).total_seconds() - 0.5
        before_idle = cpu_seconds(pid)
        time.sleep(max(idle_seconds, 0))
        idle_cpu = cpu_seconds(pid) - before_idle
        run_from = cpu_seconds(pid)
        while _still_waiting(db) and utcnow() < last + timedelta(seconds=120):
            time.sleep(0.5)
        run_cpu = cpu_seconds(pid) - run_from
    late, problems = lateness(db, due)
    db.dispose()
    print(f"reopen: {n} tickets due over {spread:.0f}s (written in {writing:.1f}s; daemon CPU {idle_from:.2f}s "
          "before they were written)")
    print(f"  idle with {n} waiting, {max(idle_seconds, 0):.1f}s: daemon CPU {idle_cpu:.2f}s "
          f"({idle_cpu / max(idle_seconds, 0.001) * 100:.1f}% of a core)")
    if late:
        print(f"  lateness: median {statistics.median(late) * 1000:.0f} ms, 99th percentile "
              f"{sorted(late)[int(len(late) * 0.99) - 1] * 1000:.0f} ms, worst {max(late) * 1000:.0f} ms")
    print(f"  daemon CPU from the first due time until all were open: {run_cpu:.2f}s "
          f"({run_cpu / (spread or 1) * 100:.1f}% of a core over the {spread:.0f}s of due times)")
    for problem in problems:
        print(f"  CHECK FAILED: {problem}")
    return not problems


def _still_waiting(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == Status.WAITING)) or 0


def lateness(db: Database, due: dict[int, datetime]) -> tuple[list[float], list[str]]:
    with db.read() as session:
        entries = session.execute(select(AuditEntry.ticket_id, AuditEntry.at)
                                  .where(AuditEntry.actor == SCHEDULER)).all()
    seen: dict[int, datetime] = {}
    problems = []
    for ticket_id, at in entries:
        if ticket_id in seen:
            problems.append(f"ticket {ticket_id} reopened twice")
        seen[ticket_id] = at
    if len(seen) != len(due):
        problems.append(f"{len(due) - len(seen)} tickets were not reopened")
    late = [(seen[t] - when).total_seconds() for t, when in due.items() if t in seen]
    if late and min(late) < 0:
        problems.append(f"a ticket was reopened {-min(late):.3f}s early")
    return late, problems


def bench_purge(url: str, folder: Path, m: int, statements: list[str]) -> tuple[float, bool]:
    """Write M purgeable tickets, time `postdesk purge`, check what it left; its seconds and whether all was right."""
    config = write_config(folder, url)
    db = open_database(url)
    upgrade(db)
    old = utcnow() - timedelta(days=60)
    started = time.monotonic()
    with db.write() as session:
        add_messages(session, add_tickets(session, 1, status=Status.OPEN, now=old, prefix="KPT"), old,
                     attachments=[SHARED])
    for start in range(0, m, CHUNK):
        with db.write() as session:
            ids = add_tickets(session, min(CHUNK, m - start), status=Status.DELETED, now=old, start=start)
            add_messages(session, [i for i in ids if i % 10], old)
            add_messages(session, [i for i in ids if i % 10 == 0], old, attachments=[SHARED])
    with db.write() as session:
        for statement in statements:
            session.execute(text(statement))
    writing = time.monotonic() - started
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "workers", "--config", str(config), "purge", "--json"],
                            capture_output=True, cwd=ROOT)
    took = time.monotonic() - started
    with db.read() as session:
        left = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == Status.DELETED))
        kept = session.scalar(select(func.count()).select_from(Blob))
    db.dispose()
    print(f"purge on {_NAMES[make_url(url).get_backend_name()]}: {m:,} deleted tickets with {m:,} messages "
          f"(written in {writing:.0f}s): `postdesk purge` took {took:.1f}s ({m / took:,.0f} tickets/s)", flush=True)
    print(f"  {' '.join(result.stdout.decode().split()) or result.stderr.decode().strip()}")
    problems = [p for p, bad in (("postdesk purge failed", result.returncode != 0),
                                 (f"{left} deleted tickets left", left != 0),
                                 ("the shared attachment was purged", kept != 1)) if bad]
    for problem in problems:
        print(f"  CHECK FAILED: {problem}")
    return took, not problems


def print_purge_table(seconds: dict[tuple[int, str], float], sizes: list[int], databases: list[str]) -> None:
    """Seconds and tickets/s by size and database; PostgreSQL over SQLite, and the growth with the size."""
    print("\npurge (`postdesk purge --json`, a whole process):")
    print(f"  {'deleted tickets':>15}" + "".join(f"  {_NAMES[d] + ' s':>13} {'tickets/s':>10}" for d in databases))
    for m in sizes:
        print(f"  {m:>15,}" + "".join(f"  {seconds[m, d]:>13.1f} {m / seconds[m, d]:>10,.0f}" for d in databases))
    if set(databases) == {"sqlite", "postgresql"}:
        print("  PostgreSQL / SQLite: " + ", ".join(
            f"{seconds[m, 'postgresql'] / seconds[m, 'sqlite']:.2f}x at {m:,}" for m in sizes))
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        print(f"  from {small:,} to {large:,} tickets (x{large / small:g} the data): " + ", ".join(
            f"{_NAMES[d]} x{seconds[large, d] / seconds[small, d]:.1f} the time" for d in databases))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=100_000, help="waiting tickets to reopen (0: skip)")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds their due times spread over")
    parser.add_argument("--deleted", type=int, action="append",
                        help="deleted tickets to purge, repeated for several sizes (default 1000000; 0: skip)")
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="make fresh PostgreSQL databases from this")
    parser.add_argument("--on", dest="databases", action="append", choices=sorted(_NAMES),
                        help="a database to measure on, repeated for both side by side "
                             "(default: postgresql with --postgres, else sqlite)")
    parser.add_argument("--sql", action="append", default=[], metavar="STATEMENT",
                        help="run on each purge database after its data is written (e.g. to try an index)")
    args = parser.parse_args()
    databases = list(dict.fromkeys(args.databases or ["postgresql" if args.postgres else "sqlite"]))
    if "postgresql" in databases and not args.postgres:
        parser.error("--on postgresql needs --postgres ADMIN_URL")
    sizes = [m for m in args.deleted or [1_000_000] if m]
    print(f"databases: {', '.join(_NAMES[d] for d in databases)}; {os.cpu_count()} cores")
    ok = True
    seconds: dict[tuple[int, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = ([("reopen", 0, d) for d in databases if args.waiting]
                + [("purge", m, d) for m in sizes for d in databases])
        for number, (name, m, database) in enumerate(runs):
            folder = Path(tmp) / f"{name}{number}"
            folder.mkdir()
            with fresh_database(args.postgres if database == "postgresql" else None, folder) as url:
                if name == "reopen":
                    ok &= bench_reopen(url, folder, args.waiting, args.spread)
                else:
                    seconds[m, database], right = bench_purge(url, folder, m, args.sql)
                    ok &= right
    if seconds:
        print_purge_table(seconds, sizes, databases)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
