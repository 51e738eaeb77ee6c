"""The web desk's server time at scale: the list, a ticket of ten messages, a two-word search.

    python bench/web.py                     # the million-ticket database of bench/cli_scale.py
    python bench/web.py --tickets 100000    # a smaller one, for a quick look

The database is bench/cli_scale.py's (built once, kept beside a marker of its size). The desk is the
real application (web.app.create_app over core.desk.Helpdesk) served by uvicorn on 127.0.0.1, and a
client on the same machine signs in and asks each page REQUESTS times after a warm-up. p50 and p95
of the server's time (the desk's Server-Timing header: from the request's arrival to its answer's
start, session check and badge included) are printed, and the client's median round trip beside
them. Targets: p50 <= 50 ms, p95 <= 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import statistics
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

import cli_scale  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402

from core.db import open_database  # noqa: E402
from core.desk import Helpdesk  # noqa: E402
from core.settings import load_settings  # noqa: E402
from web.app import create_app  # noqa: E402
from web.serve import listening_socket  # noqa: E402

REQUESTS = 50
P50_TARGET, P95_TARGET = 0.050, 0.150
WORKER, PASSWORD = "bench@corp.example", "bench password 1"


def serve(desk: Helpdesk) -> tuple[str, uvicorn.Server]:
    config = uvicorn.Config(create_app(desk), host="127.0.0.1", port=0, lifespan="off", access_log=False,
                            log_level="warning")
    server = uvicorn.Server(config)
    sock = listening_socket(config)
    threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server


def signed_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    form = client.get("/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post("/sign-in", data={"email": WORKER, "password": PASSWORD, "csrf": csrf[1]})
    assert answer.status_code == 303, answer.text
    return client


def timed(client: httpx.Client, path: str) -> tuple[float, float, float]:
    """p50 and p95 of the server's time (its Server-Timing header), and the median round trip."""
    assert client.get(path).status_code == 200, path
    server, trips = [], []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        answer = client.get(path)
        trips.append(time.perf_counter() - started)
        assert answer.status_code == 200
        server.append(float(answer.headers["server-timing"].split("dur=")[1]) / 1000)
    server.sort()
    return statistics.median(server), server[int(len(server) * 0.95) - 1], statistics.median(trips)


def ticket_with_ten_messages(path: Path) -> str:
    db = sqlite3.connect(path)
    row = db.execute("SELECT t.mask FROM tickets t JOIN messages m ON m.ticket_id = t.id GROUP BY t.id"
                     " HAVING count(*) >= 10 ORDER BY count(*) LIMIT 1").fetchone()
    db.close()
    if row is None:
        raise SystemExit("no ticket with ten messages in this database: build a larger one")
    return str(row[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    path = cli_scale.ensure_database(args.tickets)
    settings = load_settings(cli_scale.write_config(path))
    desk = Helpdesk(settings, open_database(settings.database.url))
    if WORKER not in {w.email for w in desk.workers()}:
        desk.add_worker(WORKER, "Bench")
    desk.set_password(WORKER, PASSWORD)
    mask, words = ticket_with_ten_messages(path), cli_scale.pick_cases(path)[1]
    url, server = serve(desk)
    client = signed_in(url)
    cases = {"list, default filter": "/", "a ticket of 10+ messages": f"/tickets/{mask}",
             f"search {' '.join(words)!r}": "/?" + urllib.parse.urlencode({"q": " ".join(words)})}
    print(f"\n  web desk on {args.tickets:,} tickets ({REQUESTS} requests each, after one)")
    print(f"  {'page (server time)':<36} {'p50 ms':>8} {'p95 ms':>8} {'trip ms':>8}  targets {P50_TARGET * 1000:.0f} / "
          f"{P95_TARGET * 1000:.0f} ms")
    failed = False
    for name, page in cases.items():
        p50, p95, trip = timed(client, page)
        over = p50 > P50_TARGET or p95 > P95_TARGET
        failed |= over
        print(f"  {name:<36} {p50 * 1000:8.1f} {p95 * 1000:8.1f} {trip * 1000:8.1f}  {'over' if over else 'ok'}")
    print("  (trip: the client's round trip, over loopback TCP; the targets are the server's time)")
    server.should_exit = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
