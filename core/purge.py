"""Removes for good what was deleted long ago: tickets with their messages, blobs nobody else uses, old quarantine,
encrypted transcripts past their retention.

A ticket is purgeable when it is `deleted` and untouched since the cutoff (until then `restore` brings
it back), or held as spam by the filter and not judged by any worker for `spam.retention_days`. Purging goes in batches, each its own transaction: the batch's tickets are claimed (FOR
UPDATE SKIP LOCKED on PostgreSQL), their attachments, messages, the mail the helpdesk wrote about them
(a notification or a close notice quotes the conversation) and the tickets themselves deleted
(recipients, thread keys and their audit entries go by cascade). The blobs those attachments used
are checked every BLOB_CHECK_BATCHES batches and at the end, and deleted when no attachment uses
them any more: checked per batch, a blob shared by thousands of mails (a logo in a signature) would
be looked up again and again past the index entries of the attachments already deleted. A purge
that dies between two checks leaves those blobs unused but stored. Running it twice, or in two
daemons at once, removes each thing once. Every purged ticket leaves one audit entry (ticket_id
NULL) naming its mask and what went with it.

Nothing else keeps a purged ticket's words: what its first mail taught the spam filter as not spam is
taken back (a spam verdict stays taught), and on SQLite the search index is merged once a run that
removed messages, since its segments keep a deleted message's words until then.

An encrypted transcript (core.transcripts) names no ticket: it outlives the ticket's purge and goes
when `[transcripts] retention_days` have passed since it was sealed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from datetime import datetime, timedelta

from sqlalchemy import (ColumnElement, Delete, Select, and_, delete, exists, func, insert, not_, or_, select, text,
                        true)
from sqlalchemy.sql.dml import ReturningDelete
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from core.db import Database
from core.models import (Attachment, AuditEntry, Blob, EncryptedTranscript, Message, OutboxItem, QuarantineItem,
                         SpamToken, SpamTraining, Status, Ticket)
from core.settings import Settings
from spam.statistics import apply_changes
from spam.tokens import tokenize
from spam.training import first_mail, verdict_changes

BATCH = 1000  # tickets a transaction: a crash loses at most one batch's work, never half a ticket
IN_LIST = 5000  # values bound in one IN (...): well under SQLite's limit on bound parameters
BLOB_CHECK_BATCHES = 50


@dataclass
class PurgeReport:
    """What a purge removed, or (dry run) would remove."""

    tickets: int = 0
    messages: int = 0
    attachments: int = 0
    blobs: int = 0
    quarantined: int = 0
    transcripts: int = 0

    def add(self, other: PurgeReport) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.tickets} tickets, {self.messages} messages, {self.attachments} attachments, "
                f"{self.blobs} attachment contents, {self.quarantined} quarantined mails, "
                f"{self.transcripts} transcripts")

    @property
    def removed_anything(self) -> bool:
        return any(asdict(self).values())


@dataclass(frozen=True)
class Cutoffs:
    """Deleted tickets untouched since `deleted`, tickets held as spam since `held`, mail quarantined before
    `quarantined`, transcripts sealed before `transcripts`, go."""

    deleted: datetime
    quarantined: datetime
    held: datetime
    transcripts: datetime

    @classmethod
    def from_settings(cls, settings: Settings, now: datetime) -> Cutoffs:
        """The retention settings' cutoffs."""
        return cls(deleted=now - timedelta(days=settings.scheduler.deleted_retention_days),
                   quarantined=now - timedelta(days=settings.scheduler.quarantine_retention_days),
                   held=now - timedelta(days=settings.spam.retention_days),
                   transcripts=now - timedelta(days=settings.transcripts.retention_days))

    @classmethod
    def older_than(cls, age: timedelta, now: datetime) -> Cutoffs:
        """One age for all (`postdesk purge --older-than 30d`)."""
        return cls(deleted=now - age, quarantined=now - age, held=now - age, transcripts=now - age)


def purgeable(cutoffs: Cutoffs, ticket: type[Ticket] = Ticket) -> ColumnElement[bool]:
    """The one definition of a purgeable ticket, for the purge and for its dry run alike.

    A held ticket gets no activity while held (mail to it is no activity), so its updated_at is the
    moment the filter held it.
    """
    return or_(and_(ticket.status == Status.DELETED, ticket.updated_at <= cutoffs.deleted),
               and_(ticket.status == Status.SPAM, ticket.updated_at <= cutoffs.held))


def count_purgeable(session: Session, cutoffs: Cutoffs) -> PurgeReport:
    """What a purge with these cutoffs would remove now, counted without changing anything."""
    messages = select(Message.id).join(Ticket, Ticket.id == Message.ticket_id).where(purgeable(cutoffs))
    attachments = select(Attachment.blob_sha256).where(Attachment.message_id.in_(messages))
    return PurgeReport(
        tickets=_count(session, select(Ticket.id).where(purgeable(cutoffs))),
        messages=_count(session, messages),
        attachments=_count(session, attachments),
        blobs=_count(session, attachments.where(not_(_kept_elsewhere(cutoffs))).distinct()),
        quarantined=_count(session, select(QuarantineItem.id)
                           .where(QuarantineItem.quarantined_at <= cutoffs.quarantined)),
        transcripts=_count(session, select(EncryptedTranscript.id)
                           .where(EncryptedTranscript.created_at <= cutoffs.transcripts)),
    )


def _kept_elsewhere(cutoffs: Cutoffs) -> ColumnElement[bool]:
    """An attachment of a ticket that stays uses the same content."""
    other, message, ticket = aliased(Attachment), aliased(Message), aliased(Ticket)
    return exists(select(other.id).join(message, message.id == other.message_id)
                  .join(ticket, ticket.id == message.ticket_id)
                  .where(other.blob_sha256 == Attachment.blob_sha256, not_(purgeable(cutoffs, ticket))))


def _count(session: Session, query: Select[Any]) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def purge_ticket_batch(session: Session, cutoffs: Cutoffs, *, since: datetime | None, actor: str, now: datetime,
                       limit: int = BATCH) -> tuple[PurgeReport, datetime | None, list[str]]:
    """Purge up to `limit` purgeable tickets untouched since `since` or later, oldest first.

    Returns what went, the latest updated_at among them (the next batch starts there, so its index
    scan never walks again over the entries this batch removed), and the blobs their attachments
    used, for delete_unused_blobs.
    """
    since_clause = Ticket.updated_at >= since if since is not None else true()
    claimed = session.execute(select(Ticket.id, Ticket.mask, Ticket.updated_at)
                              .where(purgeable(cutoffs), since_clause).order_by(Ticket.updated_at)
                              .limit(limit).with_for_update(skip_locked=True)).all()
    if not claimed:
        return PurgeReport(), None, []
    ids = [row.id for row in claimed]
    per_ticket, blobs = _contents(session, ids)
    _untrain_answered(session, ids)
    _delete(session, delete(Attachment).where(Attachment.message_id.in_(select(Message.id)
                                                                        .where(Message.ticket_id.in_(ids)))))
    _delete(session, delete(Message).where(Message.ticket_id.in_(ids)))
    _delete(session, delete(OutboxItem).where(OutboxItem.ticket_id.in_(ids)))  # else kept, the ticket SET NULL
    gone = set(_deleted(session, delete(Ticket).where(Ticket.id.in_(ids)).returning(Ticket.id)))
    report = PurgeReport(tickets=len(gone), messages=sum(per_ticket.get(i, (0, 0))[0] for i in gone),
                         attachments=sum(per_ticket.get(i, (0, 0))[1] for i in gone))
    _audit_purged(session, [(row.mask, per_ticket.get(row.id, (0, 0))) for row in claimed if row.id in gone],
                  actor, now)
    return report, max(row.updated_at for row in claimed), blobs


def _contents(session: Session, ids: Sequence[int]) -> tuple[dict[int, tuple[int, int]], list[str]]:
    """Each ticket's (messages, attachments), and the blobs their attachments use: one indexed read."""
    messages: dict[int, set[int]] = {}
    attachments: dict[int, int] = {}
    blobs: set[str] = set()
    for ticket_id, message_id, blob in session.execute(
            select(Message.ticket_id, Message.id, Attachment.blob_sha256)
            .outerjoin(Attachment, Attachment.message_id == Message.id).where(Message.ticket_id.in_(ids))):
        messages.setdefault(ticket_id, set()).add(message_id)
        if blob is not None:
            attachments[ticket_id] = attachments.get(ticket_id, 0) + 1
            blobs.add(blob)
    return {t: (len(m), attachments.get(t, 0)) for t, m in messages.items()}, sorted(blobs)


def _untrain_answered(session: Session, ids: Sequence[int]) -> None:
    """What the tickets taught the filter as not spam is taken back, and the tokens no other mail carries go.

    Their words would outlive them in spam_tokens otherwise (a token can be a word pair: a piece of a
    sentence). A spam verdict stays taught: the filter needs it, and spam is nobody's conversation.
    """
    for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(ids),
                                                       Ticket.spam_training == SpamTraining.NOT_SPAM)).all():
        mail = first_mail(session, ticket)
        if mail is None:
            continue
        tokens = sorted(tokenize(mail))
        apply_changes(session, verdict_changes(frozenset(tokens), SpamTraining.NOT_SPAM, SpamTraining.NONE))
        for start in range(0, len(tokens), IN_LIST):
            _delete(session, delete(SpamToken).where(SpamToken.token.in_(tokens[start:start + IN_LIST]),
                                                     SpamToken.spam <= 0, SpamToken.ham <= 0))


def delete_unused_blobs(session: Session, candidates: Sequence[str]) -> int:
    """Delete the candidates no attachment uses any more; a blob another message carries stays."""
    removed = 0
    unused = ~exists(select(Attachment.id).where(Attachment.blob_sha256 == Blob.sha256))
    for start in range(0, len(candidates), IN_LIST):
        piece = candidates[start:start + IN_LIST]
        removed += len(_deleted(session, delete(Blob).where(Blob.sha256.in_(piece), unused).returning(Blob.sha256)))
    return removed


def _audit_purged(session: Session, purged: Sequence[tuple[str, tuple[int, int]]], actor: str,
                  now: datetime) -> None:
    if purged:
        session.execute(insert(AuditEntry), [
            {"ticket_id": None, "at": now, "actor": actor, "action": "purge",
             "detail": f"{mask}: {messages} messages, {attachments} attachments"}
            for mask, (messages, attachments) in purged])


def purge_quarantine_batch(session: Session, cutoff: datetime, limit: int = BATCH) -> int:
    """Delete up to `limit` quarantined mails older than the cutoff; returns how many."""
    return _delete_oldest(session, QuarantineItem, QuarantineItem.quarantined_at, cutoff, limit)


def purge_transcript_batch(session: Session, cutoff: datetime, limit: int = BATCH) -> int:
    """Delete up to `limit` encrypted transcripts sealed before the cutoff; returns how many."""
    return _delete_oldest(session, EncryptedTranscript, EncryptedTranscript.created_at, cutoff, limit)


def _delete_oldest(session: Session, model: type[QuarantineItem] | type[EncryptedTranscript],
                   at: InstrumentedAttribute[datetime], cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` rows whose time `at` is at or before the cutoff, oldest first; returns how many."""
    ids = list(session.scalars(select(model.id).where(at <= cutoff).order_by(at).limit(limit)
                               .with_for_update(skip_locked=True)))
    if not ids:
        return 0
    return len(_deleted(session, delete(model).where(model.id.in_(ids)).returning(model.id)))


def _delete(session: Session, statement: Delete) -> None:
    """A bulk DELETE: no ORM object is loaded or synchronised."""
    session.execute(statement.execution_options(synchronize_session=False))


def _deleted(session: Session, statement: ReturningDelete[Any]) -> list[Any]:
    """A bulk DELETE ... RETURNING: the returned keys of what went."""
    return list(session.scalars(statement.execution_options(synchronize_session=False)))


KeepGoing = Callable[[Session, datetime], bool]


def run_purge(db: Database, cutoffs: Cutoffs, *, actor: str, clock: Callable[[], datetime],
              keep_going: KeepGoing = lambda session, now: True, limit: int = BATCH,
              check_blobs_every: int = BLOB_CHECK_BATCHES) -> PurgeReport:
    """Purge everything past the cutoffs, batch by batch, each batch committed; then audit the total.

    `keep_going` is asked inside each batch's transaction (the daemon renews its job lease there);
    False stops the purge before the batch, with what was purged so far kept, audited and reported.
    """
    report, since, blobs, batches = PurgeReport(), None, set[str](), 0
    try:
        while True:
            with db.write() as session:
                now = clock()
                if not keep_going(session, now):
                    break
                batch, since, used = purge_ticket_batch(session, cutoffs, since=since, actor=actor,
                                                        now=now, limit=limit)
                if batch.tickets == 0:
                    batch.quarantined = purge_quarantine_batch(session, cutoffs.quarantined, limit)
                if batch.tickets == 0 and batch.quarantined < limit:
                    batch.transcripts = purge_transcript_batch(session, cutoffs.transcripts, limit)
            report.add(batch)
            blobs.update(used)
            batches += 1
            if batches % check_blobs_every == 0:
                report.blobs += _check_blobs(db, blobs)
            if batch.tickets == 0 and batch.quarantined < limit and batch.transcripts < limit:
                break
    finally:
        report.blobs += _check_blobs(db, blobs)
    if report.messages:
        _merge_search_index(db)
    _audit_run(db, report, actor, clock())
    return report


def _merge_search_index(db: Database) -> None:
    """SQLite's search index (migration 0006) keeps a deleted message's words in its segments until they are
    merged: merged into one now, after a purge that removed messages, so its tables hold none of them.

    A rewrite of the whole index, once a run. PostgreSQL's search vector is a column of the message's row.
    """
    with db.write() as session:
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("INSERT INTO message_search(message_search) VALUES ('optimize')"))


def _check_blobs(db: Database, candidates: set[str]) -> int:
    """Delete the candidates nothing uses any more, in one transaction; the set is emptied."""
    if not candidates:
        return 0
    with db.write() as session:
        removed = delete_unused_blobs(session, sorted(candidates))
    candidates.clear()
    return removed


def _audit_run(db: Database, report: PurgeReport, actor: str, now: datetime) -> None:
    if report.removed_anything:
        with db.write() as session:
            session.add(AuditEntry(ticket_id=None, at=now, actor=actor, action="purge",
                                   detail=f"purged {report.describe()}"))
