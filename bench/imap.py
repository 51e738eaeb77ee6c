"""IMAP import benchmark: N messages in a throwaway Dovecot, fetched, spooled and moved by the poller.

    python bench/imap.py --n 1000 --batch 1 --batch 20 --batch 100

For each batch size it fills INBOX with the same N messages, then times one `ImapPoller.poll_once`
(fetch by UID, commit to a fresh SQLite spool with the UIDs, move to Done) and, as the bare figure,
a plain IMAPClient fetch of the same messages in batches of the same size (no commit, no move).
Afterwards it checks that the spool holds N rows, the ledger N finished UIDs and Done N messages,
and exits 1 when it does not. Needs dovecot (Debian's dovecot-imapd).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from sqlalchemy import func, select  # noqa: E402

from core.db import open_database  # noqa: E402
from core.models import ImapImport, SpoolItem  # noqa: E402
from core.schema import upgrade  # noqa: E402
from core.settings import ImapSettings  # noqa: E402
from dovecot import PASSWORD, USER, Dovecot, dovecot_binary  # noqa: E402
from mailgate.imap_poller import ImapPoller  # noqa: E402


def messages(n: int, body_bytes: int) -> list[bytes]:
    body = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n" * (body_bytes // 57 + 1))[:body_bytes]
    out = []
    for i in range(n):
        mail = EmailMessage(policy=SMTP)
        mail["From"], mail["To"] = f"customer{i}@outside.test", "support@example.com"
        mail["Subject"], mail["Message-ID"] = f"Question {i}", f"<bench-{i}@outside.test>"
        mail.set_content(body)
        out.append(mail.as_bytes())
    return out


def fill_inbox(server: Dovecot, raws: list[bytes]) -> None:
    with server.client(None) as client:
        for raw in raws:
            client.append("INBOX", raw)


def bare_fetch_seconds(server: Dovecot, batch: int) -> float:
    with server.client("INBOX") as client:
        started = time.perf_counter()
        uids = client.search("ALL")
        for i in range(0, len(uids), batch):
            client.fetch(uids[i:i + batch], [b"BODY.PEEK[]"])
        return time.perf_counter() - started


def poll_seconds(server: Dovecot, batch: int, folder: Path, n: int) -> float:
    db = open_database(f"sqlite:///{folder / f'batch{batch}.db'}")
    upgrade(db)
    account = ImapSettings(host="127.0.0.1", port=server.port, security="none", user=USER, password=PASSWORD,
                           move_to="Done", name="bench")
    started = time.perf_counter()
    result = ImapPoller(db, account, batch_size=batch).poll_once()
    elapsed = time.perf_counter() - started
    with db.read() as session:
        spooled = session.scalar(select(func.count()).select_from(SpoolItem))
        finished = session.scalar(select(func.count()).where(ImapImport.finished_at.is_not(None)))
    db.dispose()
    done = server.count("Done")
    if (result.imported, spooled, finished, done, server.count("INBOX")) != (n, n, n, n, 0):
        raise SystemExit(f"check failed: imported {result.imported}, spooled {spooled}, finished {finished}, "
                         f"in Done {done}, expected {n} each")
    return elapsed


def clear_done(server: Dovecot) -> None:
    with server.client(None) as client:
        if client.folder_exists("Done"):
            client.delete_folder("Done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--body-bytes", type=int, default=4000)
    parser.add_argument("--batch", type=int, action="append")
    args = parser.parse_args()
    binary = dovecot_binary()
    if binary is None:
        raise SystemExit("dovecot is not installed (apt-get install dovecot-imapd)")
    raws = messages(args.n, args.body_bytes)
    root = Path(tempfile.mkdtemp(prefix="postdesk-bench-imap-"))
    root.chmod(0o755)
    server = Dovecot(binary, root / "dovecot").start()
    try:
        print(f"{args.n} messages of {len(raws[0])} bytes")
        print(f"{'batch':>5} {'bare fetch/s':>13} {'poll (fetch+commit+move)/s':>27} {'ratio':>6}")
        for batch in args.batch or [1, 20, 100]:
            fill_inbox(server, raws)
            bare = bare_fetch_seconds(server, batch)
            ours = poll_seconds(server, batch, root, args.n)
            print(f"{batch:>5} {args.n / bare:>13.0f} {args.n / ours:>27.0f} {bare / ours:>6.2f}")
            clear_done(server)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
