"""Scheduler benchmark: how late a running daemon reopens 100,000 due tickets, its CPU, and the purge of 1,000,000.

    python bench/scheduler.py [--waiting 100000] [--spread 60] [--deleted 1000000] [--postgres ADMIN_URL]

Reopening: a real `postdesk serve` runs idle on a fresh database (SQLite, or a fresh PostgreSQL
database made from ADMIN_URL). N waiting tickets are written with due times spread evenly over
`--spread` seconds, starting a little after the writing ends. Once all are open, each ticket's
lateness is its scheduler audit entry's time minus its due time (the entry's time is read from the
clock just before the batch that reopened it; its commit follows within milliseconds). The daemon's
CPU (its process and children, from /proc) is reported while idle with N tickets waiting, and over
the run. The exit code is 1 when a ticket is not reopened, or reopened twice or early.

Purge: M deleted tickets past the retention, each with one message, every tenth carrying one
attachment shared by all of them, and one ticket that stays sharing it; `postdesk purge` (a whole
process) is timed, and checked: every deleted ticket gone, the shared attachment kept.
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

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
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


def bench_purge(url: str, folder: Path, m: int) -> bool:
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
    writing = time.monotonic() - started
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "workers", "--config", str(config), "purge", "--json"],
                            capture_output=True, cwd=ROOT)
    took = time.monotonic() - started
    with db.read() as session:
        left = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == Status.DELETED))
        kept = session.scalar(select(func.count()).select_from(Blob))
    db.dispose()
    print(f"purge: {m} deleted tickets with {m} messages (written in {writing:.0f}s): `postdesk purge` took "
          f"{took:.1f}s ({m / took:,.0f} tickets/s)")
    print(f"  {' '.join(result.stdout.decode().split()) or result.stderr.decode().strip()}")
    problems = [p for p, bad in (("postdesk purge failed", result.returncode != 0),
                                 (f"{left} deleted tickets left", left != 0),
                                 ("the shared attachment was purged", kept != 1)) if bad]
    for problem in problems:
        print(f"  CHECK FAILED: {problem}")
    return not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=100_000, help="waiting tickets to reopen (0: skip)")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds their due times spread over")
    parser.add_argument("--deleted", type=int, default=1_000_000, help="deleted tickets to purge (0: skip)")
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="run on fresh PostgreSQL databases made from this")
    args = parser.parse_args()
    print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'}; {os.cpu_count()} cores")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("reopen", args.waiting), ("purge", args.deleted)):
            if not run:
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            with fresh_database(args.postgres, folder) as url:
                if name == "reopen":
                    ok &= bench_reopen(url, folder, args.waiting, args.spread)
                else:
                    ok &= bench_purge(url, folder, args.deleted)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
