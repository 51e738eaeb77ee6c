"""Scale-out benchmark: the same spooled mail filed by one runner, then by two, sharing one PostgreSQL.

    python bench/scale.py                        # 20,000 corpus messages, PostgreSQL on 127.0.0.1:5432
    python bench/scale.py --n 2000 --url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Each setup gets a fresh database holding the same N messages in its spool (corpus mail, one unique
Message-ID each: none is a duplicate, so every one must become a ticket message). Then 1 or 2 runner
processes start together, each a `postdesk serve` daemon's spool runner (mailgate.runner.SpoolRunner,
as RunnerProcess runs it) in a process of its own, and drain the spool. Printed per setup: filed msg/s
from the start until the spool is empty, the parses per message (every runner counts its parses;
with claimed rows it is exactly 1.00), and each runner's share; then the ratio of the two rates.
Exits 1 when a message is missing, filed twice or parsed twice.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

from sqlalchemy import func, select  # noqa: E402

from ingest import DEFAULT_CORPUS, fresh_database, load_corpus, prepare_messages  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SPOOL_CHUNK = 1_000


def _config(folder: Path, url: str) -> Path:
    config = folder / f"scale-{abs(hash(url))}.toml"
    config.write_text(f'[database]\nurl = "{url}"\n\n[web]\nlisten = ""\n\n[spam]\nthreshold = 0.99\n',
                      encoding="utf-8")
    return config


def _drain(config: str, go: "multiprocessing.synchronize.Barrier", out: "multiprocessing.Queue[tuple[int, int, int]]") -> None:
    """One runner process: what a daemon's RunnerProcess does, until the spool is empty."""
    from core.db import open_configured
    from core.settings import load_settings
    from mailgate.runner import SpoolRunner

    settings = load_settings(config)
    runner = SpoolRunner(open_configured(settings.database), settings)
    go.wait()
    runner.drain()
    stats = runner.stats
    out.put((stats.parsed, stats.filed, stats.duplicates + stats.quarantined))


def run_setup(messages: list[bytes], runners: int, base_url: str, folder: Path) -> tuple[float, list[tuple[int, int, int]], bool]:
    """Spool the messages into a fresh database, drain it with `runners` processes; (msg/s, per runner, ok)."""
    from core.db import open_database
    from core.inbound import Envelope
    from core.models import Message, QuarantineItem, SpoolItem
    from core.schema import upgrade
    from mailgate.spool import spool_messages

    with fresh_database(base_url, folder) as url:
        db = open_database(url)
        upgrade(db)
        for start in range(0, len(messages), SPOOL_CHUNK):  # each mail its own envelope sender, as from the world
            spool_messages(db, [(raw, Envelope("smtp", f"sender{start + n}@outside.test", ("support@example.com",)))
                                for n, raw in enumerate(messages[start:start + SPOOL_CHUNK])])
        config = _config(folder, url)
        context = multiprocessing.get_context("spawn")
        go = context.Barrier(runners + 1)
        out: multiprocessing.Queue[tuple[int, int, int]] = context.Queue()
        processes = [context.Process(target=_drain, args=(str(config), go, out)) for _ in range(runners)]
        for process in processes:
            process.start()
        go.wait()  # every runner has its modules loaded: the clock starts with the work
        started = time.monotonic()
        shares = [out.get(timeout=3600) for _ in processes]
        seconds = time.monotonic() - started
        for process in processes:
            process.join()
        with db.read() as session:  # a delivery report for mail never sent is quarantined: kept, not filed
            filed = sum(session.scalar(select(func.count()).select_from(table)) or 0
                        for table in (Message, QuarantineItem))
            left = session.scalar(select(func.count()).select_from(SpoolItem)) or 0
        db.dispose()
    ok = filed == len(messages) and left == 0 and sum(s[0] for s in shares) == len(messages)
    if not ok:
        print(f"  CHECK FAILED: {filed:,} filed, {left:,} still spooled, "
              f"{sum(s[0] for s in shares):,} parses for {len(messages):,} messages")
    return filed / seconds, shares, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--url", default=DEFAULT_URL, help="a PostgreSQL server (fresh databases are made on it)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    messages = prepare_messages(load_corpus(args.corpus), args.n)
    print(f"{args.n:,} messages spooled, then filed by 1 and by 2 runner processes on {args.url.split('@')[-1]}")
    print(f"  {'runners':>7} {'filed msg/s':>12} {'parses/msg':>11}  per runner (parsed / filed)")
    rates, ok = {}, True
    with tempfile.TemporaryDirectory() as folder:
        for runners in (1, 2):
            rate, shares, fine = run_setup(messages, runners, args.url, Path(folder))
            ok &= fine
            rates[runners] = rate
            parses = sum(s[0] for s in shares) / args.n
            each = ", ".join(f"{p:,} / {f:,}" for p, f, _ in shares)
            print(f"  {runners:>7} {rate:12.0f} {parses:11.2f}  {each}")
    print(f"  two runners / one: {rates[2] / rates[1]:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
