"""The IMAP import ledger: which server messages are in the spool, recorded in the spool's own transaction.

A message is identified on the server by (account, folder, UIDVALIDITY, UID). Its ledger row is
written in the transaction that spools it, so after any crash a message is either spooled and
recorded or neither: a recorded UID is never fetched again, only moved or flagged, and an
unrecorded one is fetched again. When a folder's UIDVALIDITY changes its old UIDs mean nothing,
so their rows are deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.sql.elements import ColumnElement

from core.db import Database, Turn
from core.inbound import Envelope
from core.models import ImapImport, SpoolItem
from core.upsert import insert_ignore


@dataclass(frozen=True)
class Mailbox:
    """One account's folder under one UIDVALIDITY: where a UID means one message."""

    account: str
    folder: str
    uid_validity: int

    def where(self) -> ColumnElement[bool]:
        return ((ImapImport.account == self.account) & (ImapImport.folder == self.folder)
                & (ImapImport.uid_validity == self.uid_validity))


class ImportLedger:
    """Reads and writes the ledger; writes take the SQLite write turn the way the spool writer does."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def spool(self, mailbox: Mailbox, fetched: Sequence[tuple[int, bytes]], envelope: Envelope,
              now: datetime) -> list[int]:
        """Spool the fetched (uid, raw) messages and record them, in one transaction; returns the UIDs spooled.

        A UID recorded already (by another poller of the same mailbox) is skipped: the insert that
        records it is the one that decides, so two daemons never both spool a message.
        """
        spooled: list[int] = []
        with self._db.write(Turn.FIRST) as session:
            for uid, raw in fetched:
                row = {"account": mailbox.account, "folder": mailbox.folder, "uid_validity": mailbox.uid_validity,
                       "uid": uid, "imported_at": now, "finished_at": None}
                if insert_ignore(session, ImapImport.__table__, row):
                    session.add(SpoolItem(received_at=now, source=envelope.source, mail_from=envelope.mail_from,
                                          rcpt_tos=list(envelope.rcpt_tos), raw=raw, attempts=0))
                    spooled.append(uid)
        return spooled

    def recorded(self, mailbox: Mailbox, uids: Iterable[int]) -> set[int]:
        """Which of these UIDs are in the ledger (spooled already, whether moved yet or not)."""
        wanted = set(uids)
        if not wanted:
            return set()
        with self._db.read() as session:
            found = session.scalars(select(ImapImport.uid).where(
                mailbox.where(), ImapImport.uid.between(min(wanted), max(wanted))))
            return wanted.intersection(found)

    def finished(self, mailbox: Mailbox, uids: Sequence[int], now: datetime) -> None:
        """Note that these messages were moved or flagged on the server."""
        if not uids:
            return
        with self._db.write(Turn.FIRST) as session:
            session.execute(update(ImapImport).where(mailbox.where(), ImapImport.uid.in_(uids))
                            .values(finished_at=now))

    def void_other_validities(self, mailbox: Mailbox) -> int:
        """Delete the rows of the folder's earlier UIDVALIDITY values; returns how many there were."""
        stale = ((ImapImport.account == mailbox.account) & (ImapImport.folder == mailbox.folder)
                 & (ImapImport.uid_validity != mailbox.uid_validity))
        with self._db.read() as session:
            if session.scalar(select(ImapImport.uid).where(stale).limit(1)) is None:
                return 0
        with self._db.write(Turn.FIRST) as session:
            return cast("CursorResult[Any]", session.execute(delete(ImapImport).where(stale))).rowcount or 0
