"""CLI at scale: `postdesk tickets`, `show` and a two-word `search` as whole processes on 1M tickets.

    python bench/cli_scale.py                      # builds the database once (minutes), then times
    python bench/cli_scale.py --tickets 100000     # a smaller one, for a quick look

The database gets the real schema (`postdesk db upgrade`, so the FTS5 index and its triggers are
the ones the daemon uses) and is then filled in bulk with plain SQL, not through SMTP: tickets
spread over three years in every status, five messages each on average, text drawn from a Zipf
distribution over the words of the shared corpus (or a made-up vocabulary without it). It is kept
beside a marker of its size and reused by later runs.

Each command runs as its own process (`postdesk --config ... tickets`), RUNS times after one
warm-up; the median and the slowest are printed. The target is 0.3 s for each.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpora" / "spam" / "spamassassin"
TARGET_SECONDS = 0.3
RUNS = 7
STATUS_WEIGHTS = {"open": 3, "waiting": 2, "closed": 90, "deleted": 5}
PRIORITY_WEIGHTS = {"low": 10, "normal": 75, "high": 12, "urgent": 3}
GROUPS = ["Support", "Billing", "Sales", "Abuse"]
ADDRESSES = 200_000
WORKERS = 40
CHUNK = 20_000
START = datetime(2023, 11, 25)
SPAN_SECONDS = 3 * 365 * 86400
_WORD = re.compile(r"[a-z]{3,12}")


def vocabulary(size: int = 20_000) -> list[str]:
    """The corpus's words by frequency, or syllable-made words when the corpus is absent."""
    counts: Counter[str] = Counter()
    if CORPUS.is_dir():
        for path in sorted(CORPUS.rglob("*"))[:4000]:
            if path.is_file():
                counts.update(_WORD.findall(path.read_bytes().decode("latin-1").lower()))
    words = [w for w, _ in counts.most_common(size)]
    if len(words) < size:
        rng = random.Random(7)
        syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "pe", "do", "fu", "gi"]
        made = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)}
        words += sorted(made - set(words))[: size - len(words)]
    return words


def build(path: Path, tickets: int, messages_per_ticket: float, seed: int = 1) -> None:
    config = write_config(path)
    subprocess.run([sys.executable, "-m", "workers", "--config", str(config), "db", "upgrade"], check=True)
    rng = random.Random(seed)
    words = vocabulary()
    weights = [1 / (rank + 1) for rank in range(len(words))]
    cum = list(_accumulate(weights))
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA journal_mode=WAL")
    _staff(db)
    started = time.monotonic()
    _fill(db, rng, words, cum, tickets, messages_per_ticket)
    db.execute("ANALYZE")
    db.commit()
    db.close()
    print(f"built {tickets:,} tickets in {time.monotonic() - started:.0f} s", flush=True)


def _accumulate(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def _staff(db: sqlite3.Connection) -> None:
    for number, name in enumerate(GROUPS, 1):
        db.execute("INSERT OR IGNORE INTO groups (id, name, address, auto_reply, close_notice) VALUES (?, ?, ?, 1, 0)",
                   (number, name, f"{name.lower()}@example.com"))
        db.execute("INSERT OR IGNORE INTO buckets (id, group_id, name) VALUES (?, ?, 'Inbox')", (number, number))
    db.executemany("INSERT INTO workers (id, email, name) VALUES (?, ?, ?)",
                   [(i, f"worker{i}@staff.test", f"Worker {i}") for i in range(1, WORKERS + 1)])
    db.executemany("INSERT INTO addresses (id, email, name, bouncing) VALUES (?, ?, ?, 0)",
                   [(i, f"customer{i}@org{i % 5000}.test", f"Customer {i}") for i in range(1, ADDRESSES + 1)])
    db.commit()


def _fill(db: sqlite3.Connection, rng: random.Random, words: list[str], cum: list[float],
          tickets: int, per_ticket: float) -> None:
    masks: set[str] = set()
    message_id = 0
    for first in range(1, tickets + 1, CHUNK):
        ticket_rows, message_rows, recipient_rows = [], [], []
        for ticket_id in range(first, min(first + CHUNK, tickets + 1)):
            mask = _mask(rng, masks)
            created = START + timedelta(seconds=rng.randrange(SPAN_SECONDS))
            count = max(1, min(40, int(rng.expovariate(1 / per_ticket)) + 1))
            updated = created + timedelta(hours=rng.randrange(1, 24 * 14))
            customer = rng.randrange(1, ADDRESSES + 1)
            subject = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(3, 8))).capitalize()
            status = rng.choices(list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values()))[0]
            priority = rng.choices(list(PRIORITY_WEIGHTS), list(PRIORITY_WEIGHTS.values()))[0]
            group = rng.randrange(1, len(GROUPS) + 1)
            owner = rng.randrange(1, WORKERS + 1) if rng.random() < 0.7 else None
            ticket_rows.append((ticket_id, mask, subject, status, priority, group, group, owner, _t(created),
                                _t(updated), rng.choice(["new", "recipient_replied", "worker_replied"]),
                                customer, customer))
            recipient_rows.append((ticket_id, customer, _t(created)))
            for n in range(count):
                message_id += 1
                at = created + (updated - created) * n / count
                text = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(20, 120)))
                message_rows.append((message_id, ticket_id, f"<m{message_id}@bench.test>", customer,
                                     ("Re: " if n else "") + subject, _t(at), _t(at), text))
        _insert(db, ticket_rows, message_rows, recipient_rows)
        print(f"  {min(first + CHUNK - 1, tickets):,} tickets, {message_id:,} messages", flush=True)


def _insert(db: sqlite3.Connection, tickets: list[tuple], messages: list[tuple], recipients: list[tuple]) -> None:
    db.executemany(
        "INSERT INTO tickets (id, mask, subject, status, priority, group_id, bucket_id, owner_id, created_at,"
        " updated_at, last_action, first_wrote_id, last_wrote_id, spam_training)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'none')", tickets)
    db.executemany(
        "INSERT INTO messages (id, ticket_id, message_id, sender_id, unverified_sender, kind, to_addrs, cc_addrs,"
        " subject, date, received_at, headers, text, html, defects, raw)"
        " VALUES (?, ?, ?, ?, 0, 'inbound', '[]', '[]', ?, ?, ?, '[]', ?, '', '[]', x'')", messages)
    db.executemany("INSERT INTO ticket_recipients (ticket_id, address_id, added_at) VALUES (?, ?, ?)", recipients)
    db.commit()


def _mask(rng: random.Random, taken: set[str]) -> str:
    while True:
        mask = (f"{''.join(rng.choices('ABCDEFGHIJKLMNOPQRSTUVWXYZ', k=3))}"
                f"-{rng.randrange(100_000):05d}-{rng.randrange(1000):03d}")
        if mask not in taken:
            taken.add(mask)
            return mask


def _t(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def write_config(db_path: Path) -> Path:
    config = db_path.with_suffix(".toml")
    shipped = (ROOT / "settings.toml").read_text()
    config.write_text(shipped.replace('url = "sqlite:///var/postdesk.db"', f'url = "sqlite:///{db_path}"'))
    return config


def timed(config: Path, *args: str) -> tuple[float, float]:
    """Median and slowest wall time of the command as a whole process, after one warm-up run."""
    command = [str(Path(sys.executable).parent / "postdesk"), "--config", str(config), *args]
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def pick_cases(db_path: Path) -> tuple[str, list[str]]:
    """A ticket with several messages to show, and two words of middling frequency to search."""
    db = sqlite3.connect(db_path)
    mask = db.execute("SELECT t.mask FROM tickets t WHERE (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id)"
                      " = 5 LIMIT 1").fetchone()[0]
    words = vocabulary()
    pair = [words[300], words[1200]]
    for word in pair:
        hits = db.execute("SELECT count(*) FROM message_search WHERE message_search MATCH ?", (f'"{word}"',)).fetchone()
        print(f"  search word {word!r}: in {hits[0]:,} messages")
    db.close()
    return mask, pair


def ensure_database(tickets: int, per_ticket: float = 5.0, path: Path | None = None) -> Path:
    """The database of that size, built once and reused while its size and schema stay the same (bench/web.py too)."""
    path = path or Path(tempfile.gettempdir()) / f"postdesk_cli_scale_{tickets}.db"
    marker = path.with_suffix(".built")
    wanted = json.dumps({"tickets": tickets, "per_ticket": per_ticket, "schema": _schema_head()})
    if marker.exists() and path.exists() and marker.read_text() != wanted and _same_data(marker.read_text(), wanted):
        print(f"migrating {path} to schema {_schema_head()}", flush=True)  # minutes, not the build's hour
        subprocess.run([sys.executable, "-m", "workers", "--config", str(write_config(path)), "db", "upgrade"],
                       check=True)
        marker.write_text(wanted)
    if not marker.exists() or marker.read_text() != wanted:
        for stale in (path, marker, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        build(path, tickets, per_ticket)
        marker.write_text(wanted)
    return path


def _same_data(built: str, wanted: str) -> bool:
    """The same tickets, only an older schema: a migration brings it up to date."""
    try:
        old, new = json.loads(built), json.loads(wanted)
    except ValueError:
        return False
    return (old.get("tickets"), old.get("per_ticket")) == (new["tickets"], new["per_ticket"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--messages-per-ticket", type=float, default=5.0)
    parser.add_argument("--db", type=Path, default=None, help="database file (default: in the temp folder)")
    args = parser.parse_args(argv)
    path = ensure_database(args.tickets, args.messages_per_ticket, args.db)
    config = write_config(path)
    db = sqlite3.connect(path)
    tickets, messages = (db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("tickets", "messages"))
    db.close()
    print(f"database: {tickets:,} tickets, {messages:,} messages, {path.stat().st_size / 2**30:.1f} GiB")
    mask, words = pick_cases(path)
    cases = {"tickets": ["tickets"], "show": ["show", mask], "search": ["search", *words]}
    print(f"\n  {'command':<34} {'median s':>9} {'slowest s':>10}  target {TARGET_SECONDS} s")
    failed = False
    for name, arguments in cases.items():
        median, slowest = timed(config, *arguments)
        failed |= median > TARGET_SECONDS
        print(f"  postdesk {' '.join(arguments):<25} {median:9.3f} {slowest:10.3f}  "
              f"{'ok' if median <= TARGET_SECONDS else 'over'}")
    return 1 if failed else 0


def _schema_head() -> str:
    sys.path.insert(0, str(ROOT))
    from core.schema import SCHEMA_HEAD

    return SCHEMA_HEAD


if __name__ == "__main__":
    sys.exit(main())
