"""One logged-in IMAP connection to an account's folder: the few things the poller asks of a server.

Every failure of the server or the network leaves here as MailboxUnavailable (MailboxLoginRefused
for a refused login), so the poller has one thing to catch and retry.
"""

from __future__ import annotations

import imaplib
import select
import ssl
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import LoginError

from core.errors import MailboxLoginRefused, MailboxUnavailable
from core.settings import ImapSettings

IDLE_CHECK_SECONDS = 1.0  # how soon a stop request is noticed while idling
BODY = b"BODY[]"


@contextmanager
def _translated(account: ImapSettings) -> Iterator[None]:
    """Library and socket errors become MailboxUnavailable, naming the account."""
    try:
        yield
    except LoginError as exc:
        raise MailboxLoginRefused(account.name, f"login refused for {account.user}: {_text(exc)}") from exc
    except (imaplib.IMAP4.error, OSError, EOFError) as exc:
        raise MailboxUnavailable(account.name, f"{type(exc).__name__}: {_text(exc)}") from exc


def _text(exc: BaseException) -> str:
    text = str(exc)
    return text[2:-1] if text.startswith(("b'", 'b"')) else text


def _tls_context(account: ImapSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=account.ca_file or None)


class ImapConnection:
    """A connection with the account's folder selected; a context manager that logs out on exit."""

    def __init__(self, account: ImapSettings, client: IMAPClient, uid_validity: int) -> None:
        self.account = account
        self.uid_validity = uid_validity
        self._client = client

    @classmethod
    def open(cls, account: ImapSettings) -> ImapConnection:
        """Connect, secure, log in, make sure the done folder exists, select the folder."""
        with _translated(account):
            client = IMAPClient(account.host, account.port, ssl=account.security == "tls",
                                ssl_context=_tls_context(account), timeout=account.timeout_seconds)
            try:
                if account.security == "starttls":
                    client.starttls(_tls_context(account))
                client.login(account.user, account.resolved_password())
                if account.after_import == "move" and not client.folder_exists(account.move_to):
                    client.create_folder(account.move_to)
                selected = client.select_folder(account.folder)
            except BaseException:
                client.shutdown()
                raise
        return cls(account, client, int(selected[b"UIDVALIDITY"]))

    def __enter__(self) -> ImapConnection:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Log out politely; a connection that is gone already is just closed."""
        try:
            self._client.logout()
        except (imaplib.IMAP4.error, OSError, EOFError):
            try:
                self._client.shutdown()
            except OSError:
                pass

    @property
    def can_idle(self) -> bool:
        with _translated(self.account):
            return self.account.idle and self._client.has_capability("IDLE")

    def search(self, criteria: str) -> list[int]:
        """UIDs in the folder matching an IMAP search key, e.g. ALL or UNDELETED, ascending."""
        with _translated(self.account):
            return sorted(int(uid) for uid in self._client.search(criteria))

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """Each message's size in bytes (RFC822.SIZE), so batches can be cut by size before fetching."""
        with _translated(self.account):
            found = self._client.fetch(list(uids), [b"RFC822.SIZE"])
        return {uid: int(found[uid][b"RFC822.SIZE"]) for uid in uids if uid in found}

    def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        """The raw messages, by UID, without setting \\Seen; UIDs expunged meanwhile are left out."""
        with _translated(self.account):
            found = self._client.fetch(list(uids), [b"BODY.PEEK[]"])
        return [(uid, bytes(found[uid][BODY])) for uid in uids if uid in found and BODY in found[uid]]

    def finish(self, uids: Sequence[int]) -> None:
        """What the account says to do with imported mail: move it to move_to, or flag it deleted and expunge."""
        if not uids:
            return
        with _translated(self.account):
            if self.account.after_import == "move" and self._client.has_capability("MOVE"):
                self._client.move(list(uids), self.account.move_to)
                return
            if self.account.after_import == "move":
                self._client.copy(list(uids), self.account.move_to)
            self._client.add_flags(list(uids), [DELETED], silent=True)
            if self._client.has_capability("UIDPLUS"):
                self._client.uid_expunge(list(uids))
            else:
                self._client.expunge()

    def wait_for_mail(self, stop: threading.Event, seconds: float) -> None:
        """Until the server announces new mail (IDLE) or `seconds` pass; returns at once when stop is set."""
        if not self.can_idle:
            stop.wait(seconds)
            return
        with _translated(self.account):
            self._client.idle()
            self._idle_until_exists(stop, time.monotonic() + seconds)
            self._client.idle_done()  # after a failure the connection is dropped instead

    def _idle_until_exists(self, stop: threading.Event, deadline: float) -> None:
        while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self._client.socket()], [], [], min(IDLE_CHECK_SECONDS, remaining))
            if not readable:
                continue
            responses = self._client.idle_check(timeout=0)
            if not responses:  # readable, yet no line: the server closed the connection
                raise EOFError("connection closed while idling")
            if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                return
