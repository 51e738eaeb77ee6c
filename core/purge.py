"""Removes for good what was deleted long ago: tickets with their messages, blobs nobody else uses, old quarantine,
encrypted transcripts past their retention.

A ticket is purgeable when it is `deleted` and untouched since the cutoff (until then `restore` brings
it back), or held as spam by the filter and not judged by any worker for `spam.retention_days`.
Purging goes in batches, each its own transaction: the batch's tickets are claimed (FOR UPDATE SKIP
LOCKED on PostgreSQL; deleted tickets, then held spam, each oldest first, a batch resuming after the
last ticket the one before claimed), their attachments, messages, the mail the helpdesk wrote about them
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

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar
from datetime import datetime, timedelta

from sqlalchemy import (ARRAY, ColumnElement, Delete, Row, Select, Text, and_, any_, bindparam, delete, exists, func,
                        insert, literal, not_, or_, select, text, tuple_)
from sqlalchemy.sql import Executable
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
_LOOKED_UP = [Ticket.__tablename__, Message.__tablename__, Attachment.__tablename__, OutboxItem.__tablename__]
_Statement = TypeVar("_Statement", bound=Executable)


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


@dataclass(frozen=True)
class Resume:
    """The last ticket a batch claimed: the next batch's claim starts just after it in the index."""

    status: Status
    updated_at: datetime
    id: int


def purge_ticket_batch(session: Session, cutoffs: Cutoffs, *, after: Resume | None, actor: str, now: datetime,
                       limit: int = BATCH) -> tuple[PurgeReport, Resume | None, list[str]]:
    """Purge up to `limit` purgeable tickets claimed after `after`, oldest first; deleted ones, then held spam.

    Returns what went, where the next batch resumes (so its index scan never walks again over the
    entries this batch removed, which PostgreSQL keeps until a vacuum), and the blobs their
    attachments used, for delete_unused_blobs.
    """
    claimed = _claim(session, cutoffs, after, limit)
    if not claimed:
        return PurgeReport(), None, []
    _untrain_answered(session, [row.id for row in claimed if row.spam_training == SpamTraining.NOT_SPAM])
    messages, carried, blobs = _delete_contents(session, [row.id for row in claimed])
    gone = set(session.scalars(_bulk(delete(Ticket).where(_among(session, Ticket.id, [row.id for row in claimed]))
                                     .returning(Ticket.id))))
    report = PurgeReport(tickets=len(gone), messages=sum(messages[i] for i in gone),
                         attachments=sum(carried[i] for i in gone))
    _audit_purged(session, [(row.mask, (messages[row.id], carried[row.id])) for row in claimed if row.id in gone],
                  actor, now)
    last = claimed[-1]
    return report, Resume(last.status, last.updated_at, last.id), blobs


def _delete_contents(session: Session, ids: Sequence[int]) -> tuple[Counter[int], Counter[int], list[str]]:
    """Delete the tickets' attachments, messages and outbox mail; their messages and attachments a ticket, and
    the blobs those attachments used."""
    attachments = session.execute(_bulk(delete(Attachment).where(Attachment.message_id.in_(
        select(Message.id).where(_among(session, Message.ticket_id, ids))))
        .returning(Attachment.message_id, Attachment.blob_sha256))).all()
    ticket_of = dict(session.execute(_bulk(delete(Message).where(_among(session, Message.ticket_id, ids))
                                           .returning(Message.id, Message.ticket_id))).all())
    # else kept, the ticket SET NULL
    session.execute(_bulk(delete(OutboxItem).where(_among(session, OutboxItem.ticket_id, ids))))
    return (Counter(ticket_of.values()), Counter(ticket_of[message_id] for message_id, _ in attachments),
            sorted({blob for _, blob in attachments}))


def _claim(session: Session, cutoffs: Cutoffs, after: Resume | None,
           limit: int) -> Sequence[Row[int, str, Status, datetime, SpamTraining]]:
    """Lock up to `limit` purgeable tickets after `after` (FOR UPDATE SKIP LOCKED on PostgreSQL), of one status.

    One range of the (status, updated_at, id) index a status, read in its order: an OR of the two
    statuses was read whole and sorted every batch, which made the purge quadratic.
    """
    statuses = [(Status.DELETED, cutoffs.deleted), (Status.SPAM, cutoffs.held)]
    if after is not None:
        statuses = statuses[[status for status, _ in statuses].index(after.status):]
    for status, cutoff in statuses:
        where = [Ticket.status == status, Ticket.updated_at <= cutoff]
        if after is not None and after.status == status:
            where.append(tuple_(Ticket.updated_at, Ticket.id) > (after.updated_at, after.id))  # typed as the columns
        claimed = session.execute(select(Ticket.id, Ticket.mask, Ticket.status, Ticket.updated_at,
                                         Ticket.spam_training).where(*where)
                                  .order_by(Ticket.updated_at, Ticket.id).limit(limit)
                                  .with_for_update(skip_locked=True)).all()
        if claimed:
            return claimed
    return []


def _among(session: Session, column: InstrumentedAttribute[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `= ANY` of one array: a thousand bound values made each statement
    cost more to render, send and parse than to run."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _untrain_answered(session: Session, ids: Sequence[int]) -> None:
    """What the tickets taught the filter as not spam is taken back, and the tokens no other mail carries go.

    Their words would outlive them in spam_tokens otherwise (a token can be a word pair: a piece of a
    sentence). A spam verdict stays taught: the filter needs it, and spam is nobody's conversation.
    """
    if not ids:
        return
    for ticket in session.scalars(select(Ticket).where(Ticket.id.in_(ids))).all():
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
    """One audit entry (ticket_id NULL) a purged ticket: on PostgreSQL one INSERT of an array, where a
    thousand INSERTs took a sixth of the batch."""
    details = [f"{mask}: {messages} messages, {attachments} attachments" for mask, (messages, attachments) in purged]
    if not details:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(insert(AuditEntry).from_select(
            ["at", "actor", "action", "detail"],
            select(bindparam(None, now, type_=AuditEntry.at.type), literal(actor), literal("purge"),
                   func.unnest(bindparam(None, details, type_=ARRAY(Text))))))
        return
    session.execute(insert(AuditEntry), [{"ticket_id": None, "at": now, "actor": actor, "action": "purge",
                                          "detail": detail} for detail in details])


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


def _bulk(statement: _Statement) -> _Statement:
    """A bulk DELETE: no ORM object is loaded or synchronised."""
    return statement.execution_options(synchronize_session=False)


def _delete(session: Session, statement: Delete) -> None:
    """A bulk DELETE: no ORM object is loaded or synchronised."""
    session.execute(_bulk(statement))


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
    report, after, blobs, batches = PurgeReport(), None, set[str](), 0
    _gather_statistics(db)
    try:
        while True:
            with db.write() as session:
                now = clock()
                if not keep_going(session, now):
                    break
                batch, after, used = purge_ticket_batch(session, cutoffs, after=after, actor=actor,
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


def _gather_statistics(db: Database) -> None:
    """On PostgreSQL, ANALYZE the tables a batch reads when they have no statistics yet.

    Without them (autovacuum off, or not yet past a bulk load) the planner guessed that a batch's
    thousand ticket ids matched a sixth of the messages (48,514 of 300,001) and read the whole table
    instead of its index, every batch: the purge grew with the square of the tables. A sample of at
    most 30,000 rows a table, taken once a run; an empty table has none and is sampled again, cheaply.
    """
    if db.engine.dialect.name != "postgresql":
        return
    with db.write() as session:
        bare = session.scalars(text(
            "SELECT t FROM unnest(CAST(:tables AS text[])) AS t WHERE NOT EXISTS"
            " (SELECT FROM pg_stats s WHERE s.schemaname = current_schema() AND s.tablename = t)"),
            {"tables": _LOOKED_UP}).all()
        for table in bare:
            session.execute(text(f'ANALYZE "{table}"'))


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
