"""Brings one IMAP account's mail into the spool: fetch by UID, commit, then move or flag; reconnect with backoff.

The order is what makes it safe. A message is committed to the spool, with its UID in the import
ledger, before the server is told anything; only then is it moved (or flagged and expunged). A
crash or a dropped connection before the commit means it is fetched again; after the commit, it
is recognised by its UID and only moved. From the spool on it is mail like any other: the runner
threads it, scores it and notifies as it does for SMTP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.db import Database
from core.errors import MailboxLoginRefused, MailboxUnavailable, StorageError
from core.inbound import Envelope
from core.models import utcnow
from core.settings import ImapSettings
from mailgate.imap_connection import ImapConnection
from mailgate.imap_ledger import ImportLedger, Mailbox

log = logging.getLogger(__name__)

BATCH_SIZE = 50  # at most this many messages fetched, committed and moved together (bench/imap.py) ...
BATCH_BYTES = 16 * 1024 * 1024  # ... and at most this many bytes, unless one message is bigger alone
SIZES_PER_FETCH = 500  # UIDs whose sizes are asked in one command (servers limit a command's length)


@dataclass
class SyncResult:
    imported: int = 0  # spooled by this poll
    finished: int = 0  # moved or flagged on the server, whether spooled by this poll or an earlier one
    too_large: int = 0  # over smtp.max_message_size: left in the mailbox, untouched, as SMTP would answer 552


class Backoff:
    """Doubling delays between failed attempts, from `initial` up to `maximum`; reset after a success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._initial, self._maximum = initial, maximum
        self._next = initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._maximum)
        return delay

    def reset(self) -> None:
        self._next = self._initial


class ImapPoller:
    """Polls one [[imap]] account: `sync` once (for `postdesk imap poll`), or `run` until stopped (the daemon)."""

    def __init__(self, db: Database, account: ImapSettings, on_committed: Callable[[], None] = lambda: None,
                 clock: Callable[[], datetime] = utcnow, batch_size: int = BATCH_SIZE, batch_bytes: int = BATCH_BYTES,
                 max_message_size: int | None = None) -> None:
        self.account = account
        self._max_size = max_message_size
        self._ledger = ImportLedger(db)
        self._on_committed = on_committed
        self._clock = clock
        self._batch_size, self._batch_bytes = batch_size, batch_bytes
        self._envelope = Envelope("imap", "", (account.deliver_to,) if account.deliver_to else ())

    def run(self, stop: threading.Event) -> None:
        """Sync, wait for mail (IDLE, or poll_seconds), sync again, until stop is set; failures only delay."""
        backoff = Backoff(self.account.retry_initial_seconds, self.account.retry_max_seconds)
        while not stop.is_set():
            try:
                self._serve_connection(stop, backoff)
            except (MailboxUnavailable, StorageError) as exc:
                delay = backoff.next()
                level = logging.ERROR if isinstance(exc, MailboxLoginRefused) else logging.WARNING
                log.log(level, "%s; retrying in %gs", _described(self.account, exc), delay)
                stop.wait(delay)
            except Exception:  # a bug must not end this account's polling while the daemon runs on
                delay = backoff.next()
                log.exception("imap %s: unexpected failure; retrying in %gs", self.account.name, delay)
                stop.wait(delay)

    def _serve_connection(self, stop: threading.Event, backoff: Backoff) -> None:
        with ImapConnection.open(self.account) as connection:
            idle = connection.can_idle
            log.info("imap %s: connected, folder %s, %s", self.account.name, self.account.folder,
                     "waiting with IDLE" if idle else f"polling every {self.account.poll_seconds:g}s")
            while not stop.is_set():
                self.sync(connection, stop)
                backoff.reset()  # only after a whole sync: a failure that recurs mid-sync keeps backing off
                wait = self.account.idle_seconds if idle else self.account.poll_seconds
                connection.wait_for_mail(stop, wait)

    def poll_once(self) -> SyncResult:
        """Connect, sync, log out: the one-shot poll of `postdesk imap poll`."""
        with ImapConnection.open(self.account) as connection:
            return self.sync(connection)

    def sync(self, connection: ImapConnection, stop: threading.Event | None = None) -> SyncResult:
        """Finish what an earlier poll spooled but did not move, then import what is new, in batches."""
        mailbox = Mailbox(self.account.name, self.account.folder, connection.uid_validity)
        if voided := self._ledger.void_other_validities(mailbox):
            log.warning("imap %s: folder %s has a new UIDVALIDITY %d; %d recorded UIDs of the old one are void",
                        self.account.name, mailbox.folder, mailbox.uid_validity, voided)
        result = SyncResult()
        recorded = self._ledger.recorded(mailbox, connection.search("ALL"))
        for batch in _batches(sorted(recorded), self._batch_size):
            result.finished += self._finish(connection, mailbox, batch)
        new = [uid for uid in connection.search("UNDELETED") if uid not in recorded]
        for batch in self._batches_by_size(connection, new, result):
            if stop is not None and stop.is_set():
                break
            imported, in_ledger = self._import(connection, mailbox, batch)
            result.imported += imported
            result.finished += self._finish(connection, mailbox, in_ledger)
        return result

    def _batches_by_size(self, connection: ImapConnection, uids: Sequence[int],
                         result: SyncResult) -> Iterator[list[int]]:
        """The UIDs in batches of at most batch_size messages and batch_bytes, asking their sizes first.

        A message over the size limit is left where it is, said in the log at every poll and counted.
        """
        for chunk in _batches(uids, SIZES_PER_FETCH):
            sizes = connection.sizes(chunk)
            batch: list[int] = []
            total = 0
            for uid in chunk:
                if self._max_size is not None and sizes.get(uid, 0) > self._max_size:
                    log.warning("imap %s: UID %d in %s is %d bytes, over smtp.max_message_size %d: left in the "
                                "mailbox", self.account.name, uid, self.account.folder, sizes[uid], self._max_size)
                    result.too_large += 1
                    continue
                if batch and (len(batch) == self._batch_size or total + sizes.get(uid, 0) > self._batch_bytes):
                    yield batch
                    batch, total = [], 0
                batch.append(uid)
                total += sizes.get(uid, 0)
            if batch:
                yield batch

    def _import(self, connection: ImapConnection, mailbox: Mailbox, uids: Sequence[int]) -> tuple[int, list[int]]:
        """Fetch and commit one batch; returns how many were spooled and the UIDs now in the ledger.

        Only those UIDs may be moved: one the server did not return (expunged meanwhile, or a body
        missing from the answer) was not committed, so it stays where it is.
        """
        fetched = connection.fetch(uids)
        spooled = self._ledger.spool(mailbox, fetched, self._envelope, self._clock())
        if spooled:
            self._on_committed()
            log.info("imap %s: spooled %d messages from %s", self.account.name, len(spooled), mailbox.folder)
        return len(spooled), [uid for uid, _ in fetched]

    def _finish(self, connection: ImapConnection, mailbox: Mailbox, uids: Sequence[int]) -> int:
        """Move or flag messages already in the ledger; a drop here leaves them to the next sync."""
        if not uids:
            return 0
        connection.finish(uids)
        self._ledger.finished(mailbox, uids, self._clock())
        return len(uids)


class ImapPollers:
    """The daemon's pollers, one thread per [[imap]] account; stop() lets each finish its batch in hand."""

    def __init__(self, db: Database, accounts: Sequence[ImapSettings], on_committed: Callable[[], None],
                 max_message_size: int | None = None) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=ImapPoller(db, account, on_committed,
                                                            max_message_size=max_message_size).run,
                                          args=(self._stop,), name=f"imap-{account.name}", daemon=True)
                         for account in accounts]

    def start(self) -> ImapPollers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _batches(uids: Sequence[int], size: int) -> list[Sequence[int]]:
    return [uids[i:i + size] for i in range(0, len(uids), size)]


def _described(account: ImapSettings, exc: Exception) -> str:
    return str(exc) if isinstance(exc, MailboxUnavailable) else f"imap {account.name}: {exc}"
