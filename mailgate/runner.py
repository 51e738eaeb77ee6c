"""Turns spooled mail into ticket messages: parse, run the pipeline, or quarantine. Never drops.

A batch is filed in one transaction (on PostgreSQL, one per mail), sixteen mails to a savepoint;
when one fails, its group is filed again a mail at a time, so one bad message costs only itself.
A spool row is deleted in the same savepoint that files its message, so a crash at any moment
leaves the mail either filed or still spooled. Several runners (daemons) may share one database:
each claims its batch before parsing it (mailgate.spool_claims), so none parses or files another's.

The daemon runs its runner in a process of its own (RunnerProcess): filing is CPU work, and in the
SMTP process it would take the interpreter lock from the event loop that answers every session.
The daemon's runner logs one INFO line per mail it filed or quarantined, once that is committed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from logging.handlers import QueueHandler, QueueListener
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.db import Database, Turn, open_configured
from core.errors import PostdeskError, StorageError, ThreadRace, UnparseableMessage
from core.inbound import Envelope, InboundMessage
from core.models import utcnow
from core.notify import Outbound
from core.pipeline import Delivery, FilingOutcome, look_ahead, run_pipeline
from core.quarantine import quarantine_raw
from core.settings import Settings
from mailgate.parse import parse_message
from mailgate.spool import WriteTurns, spool_messages
from mailgate.spool_claims import (claim_batch, delete_all_claimed, delete_claimed, note_attempt, release,
                                   release_the_dead, runner_name)

if TYPE_CHECKING:  # dkimpy loads only when a signature is to be checked
    from core.dkim_proof import DnsLookup

log = logging.getLogger(__name__)

BATCH_SIZE = 64
GROUP_SIZE = 16  # mails filed in one savepoint (SQLite): a failure refiles its group a mail at a time
MAX_ATTEMPTS = 5
RETRY_PAUSE_SECONDS = 1.0
# The least the runner files before it lets a waiting spool writer in: each turn costs a commit,
# and a waiting SMTP client waits at most this long (plus one message) for its 250.
MIN_TURN_SECONDS = 0.005
# Filing is work that can wait: the spool holds a burst durably. Acknowledging cannot, since every
# SMTP client waits for its 250; so on a busy machine the SMTP process gets the CPU first.
RUNNER_NICENESS = 10
START_METHOD: Final = "spawn"  # never fork a process that holds open database connections


def _dkim_lookup(settings: Settings) -> DnsLookup | None:
    """The DKIM key lookup of `helpdesk.dkim_dns_file`, or None for DNS itself."""
    if not settings.helpdesk.dkim_dns_file:
        return None
    from core.dkim_proof import dns_from_file

    return dns_from_file(Path(settings.helpdesk.dkim_dns_file))


@dataclass(frozen=True)
class Spooled:
    id: int
    received_at: datetime
    envelope: Envelope
    raw: bytes
    attempts: int


class Parsed(NamedTuple):
    """A spooled mail after parsing, with what the parse cost (part of the milliseconds its log line gives)."""

    item: Spooled
    result: InboundMessage | UnparseableMessage
    seconds: float
    spam_tokens: frozenset[str] | None = None  # made beside the parse where that runs in a pool (the import)


@dataclass(frozen=True)
class MailFiled:
    """One mail's end in the runner, said in the log only after the transaction that filed it committed."""

    message_id: str  # "-" when the mail could not be parsed
    mask: str  # "-" when it is on no ticket
    outcome: FilingOutcome
    step: str  # the pipeline step that decided the outcome, or what ended the mail before the pipeline
    milliseconds: int

    def log(self) -> None:
        log.info("mail %s outcome=%s mask=%s step=%s ms=%d", self.message_id, self.outcome.value, self.mask,
                 self.step, self.milliseconds)


class Flag(Protocol):
    """What the runner needs of an event; threading's and ProcessFlag both fit."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class ProcessFlag:
    """An event between processes whose `set` never waits, even when the process waiting on it has died.

    multiprocessing.Event's set() waits for each waiter to wake up: one killed while waiting would hang
    the other process for good. A semaphore's release never waits; a release stands for "set".
    """

    def __init__(self, context: BaseContext) -> None:
        self._raised = context.Semaphore(0)

    def set(self) -> None:
        self._raised.release()

    def clear(self) -> None:
        while self._raised.acquire(block=False):
            pass

    def is_set(self) -> bool:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> bool:
        """True once set (it stays set until cleared); False after `timeout` seconds."""
        if not self._raised.acquire(timeout=timeout):
            return False
        self._raised.release()
        return True


@dataclass
class RunStats:
    filed: int = 0
    duplicates: int = 0
    quarantined: int = 0
    retried: int = 0
    parsed: int = 0  # parses, retries included: with every runner claiming its own rows, one per mail


class SpoolRunner:
    """Drains the spool; `run` loops for the daemon (in RunnerProcess), `drain` runs once for CLI commands."""

    def __init__(self, db: Database, settings: Settings, batch_size: int = BATCH_SIZE,
                 poll_seconds: float = 1.0, wake: Flag | None = None,
                 filed: Flag | None = None, log_each_mail: bool = False) -> None:
        self._db = db
        self.name = runner_name()  # what its claims on spool rows say
        self._log_each_mail = log_each_mail  # the daemon's runner; an import of thousands stays quiet
        self._filed = filed  # set after each commit that filed mail: the outbox may have mail to send now
        self._helpdesk = settings.helpdesk
        self._spam = settings.spam
        self._outbound = Outbound.from_settings(settings)
        self._dkim_dns = _dkim_lookup(settings)
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wake: Flag = wake if wake is not None else threading.Event()
        # On PostgreSQL each mail commits on its own: a row two mails share (an address, a thread key)
        # is then locked for one mail, not for a batch, so runners of several daemons never deadlock
        # on each other's batches. PostgreSQL's commit is cheap enough (bench/scale.py: 93 msg/s against
        # 96 batched, one runner); SQLite's one write lock makes a batch the cheaper there.
        self._commit_each = not db.is_sqlite
        self.stats = RunStats()

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: Flag) -> None:
        """Process until stopped; polls too, since another gateway may spool into the same database."""
        self._release_the_dead()
        while not stop.is_set():
            self._wake.clear()
            try:
                progressed = self.process_batch()
            except StorageError as exc:
                log.error("spool runner: %s; retrying in %.0fs", exc, RETRY_PAUSE_SECONDS)
                stop.wait(RETRY_PAUSE_SECONDS)
                continue
            if not progressed:
                self._wake.wait(self._poll_seconds)
        self.drain()

    def drain(self) -> RunStats:
        """Process everything spooled now; returns the running totals."""
        while self.process_batch():
            pass
        return self.stats

    def process_batch(self) -> bool:
        """File one fetched batch; False when the spool held nothing this runner could take.

        Parsing needs no lock, so it happens first. The filing is one transaction, or several when
        the spool writer asks for its turn: the runner commits after the message in hand, steps
        aside, and goes on with the rest of the batch in a new transaction.
        """
        items = self._claim()
        if not items:
            return False
        return self.file_parsed([parse_spooled(item) for item in items])

    def spool_claimed(self, items: Sequence[tuple[bytes, Envelope]]) -> list[Spooled]:
        """Commit mail to the spool already claimed by this runner (`postdesk import`, which parses it
        elsewhere): durable now, and no daemon's runner parses it meanwhile."""
        ids = spool_messages(self._db, items, claimed_by=self.name)
        now = utcnow()
        return [Spooled(spool_id, now, envelope, raw, 0) for spool_id, (raw, envelope) in zip(ids, items)]

    def file_parsed(self, parsed: list[Parsed]) -> bool:
        """File mail this runner claimed and parsed; False when every one failed (to be retried later)."""
        self.stats.parsed += len(parsed)
        pending = list(parsed)
        failures = 0
        try:
            while pending:
                ended: list[MailFiled] = []
                with self._db.write(Turn.YIELDING) as session:
                    self._look_ahead(session, pending)
                    done, failed, again = self._file_until_writer_waits(session, pending, ended)
                if done > failed and self._filed is not None:
                    self._filed.set()
                if self._log_each_mail:
                    for mail in ended:
                        mail.log()
                failures += failed
                pending = pending[done:] + again
        finally:
            if pending:  # cut short (the database went away): the rest waits for the next look, not the lease
                self._release([p.item.id for p in pending])
        return failures < len(parsed)

    def _look_ahead(self, session: Session, pending: list[Parsed]) -> None:
        """Find out at once which of the batch's ids nothing stores yet (core.unseen_ids), on SQLite only.

        What the look-ahead found holds only while no one else can write: SQLite's transaction holds
        the one write lock from its start. On PostgreSQL another daemon's runner may commit a thread
        key a moment later, and threading must see it to join that ticket rather than split the thread.
        """
        if self._db.is_sqlite:
            look_ahead(session, [p.result for p in pending if isinstance(p.result, InboundMessage)])

    def _release_the_dead(self) -> None:
        released = self._on_claims(release_the_dead, "could not look for claims of dead runners")
        if released:
            log.warning("spool runner: %d spooled mails claimed by a runner that died are filed now", released)

    def _release(self, spool_ids: list[int]) -> None:
        self._on_claims(lambda session: release(session, self.name, spool_ids),
                        f"claims on {len(spool_ids)} rows kept until their lease ends")

    def _on_claims(self, change: Callable[[Session], int], otherwise: str) -> int:
        """Give claims back in a transaction of its own; a failure only delays them until their lease ends."""
        try:
            with self._db.write(Turn.YIELDING) as session:
                return change(session)
        except (StorageError, SQLAlchemyError) as exc:
            log.warning("spool runner: %s: %s", otherwise, exc)
            return 0

    def _file_until_writer_waits(self, session: Session, pending: list[Parsed],
                                 ended: list[MailFiled]) -> tuple[int, int, list[Parsed]]:
        """File items in order, at least one group, until the writer waits; returns how many were done and
        failed, and the mails to try again at once (a deadlock with another runner: the parse in hand, the
        claim kept).

        Mails are filed a group at a time in one savepoint, not a savepoint each: that saves two
        statements and the ORM's savepoint bookkeeping per mail. When one mail of a group fails, the group is undone and filed again a mail at a time,
        each in its savepoint, so a bad mail still costs only itself. On PostgreSQL each mail commits
        on its own anyway. What became of each mail is added to `ended`, to be logged once the caller
        has committed.
        """
        failed = 0
        again: list[Parsed] = []
        ends = time.monotonic() + MIN_TURN_SECONDS
        group_size = 1 if self._commit_each else GROUP_SIZE

        def writer_waits() -> bool:
            return self._db.first_waiting() and time.monotonic() >= ends

        done = 0
        while done < len(pending):
            group = pending[done:done + group_size]
            together = None if len(group) == 1 else self._file_group(session, group, writer_waits)
            if together is not None:
                for mail in together:
                    self._count(mail, ended)
                done += len(together)
            else:
                for parsed in group:
                    started = time.monotonic() - parsed.seconds  # the parse is part of what the mail cost
                    failure = self._file_alone(session, parsed, ended)
                    if failure is None:
                        continue
                    # A failure is recorded before the next item: spool rows are then locked in id order,
                    # as every runner locks them, so two runners may wait for each other but never deadlock.
                    if failure.transient and parsed.item.attempts + 1 < MAX_ATTEMPTS:
                        again.append(self._count_attempt(session, parsed, failure.error))
                    else:
                        self._record_failure(session, parsed, failure.error, started, ended)
                        failed += 1
                done += len(group)
            if self._commit_each or writer_waits():
                break
        return done, failed, again

    def _count_attempt(self, session: Session, parsed: Parsed, error: str) -> Parsed:
        """A transient failure: counted on the row, which this runner keeps claimed to try again at once."""
        attempts = parsed.item.attempts + 1
        log.warning("spool item %d failed (attempt %d), trying again: %s", parsed.item.id, attempts, error)
        note_attempt(session, self.name, parsed.item.id, attempts, error)
        return parsed._replace(item=replace(parsed.item, attempts=attempts))

    def _claim(self) -> list[Spooled]:
        with self._db.write(Turn.YIELDING) as session:
            rows = claim_batch(session, self.name, self._batch_size, utcnow())
        return [Spooled(r.id, r.received_at, Envelope(r.source, r.mail_from, tuple(r.rcpt_tos)), r.raw, r.attempts)
                for r in rows]

    def _file_group(self, session: Session, group: list[Parsed],
                    writer_waits: Callable[[], bool]) -> list[MailFiled] | None:
        """File mails in one savepoint, the first ones of the group when the spool writer waits for its turn;
        None when any failed or had lost its claim, and then none of them is filed."""
        try:
            with session.begin_nested():
                filed = []
                for parsed in group:
                    filed.append(self._file_mail(session, parsed))
                    if writer_waits():
                        break
                ids = [parsed.item.id for parsed in group[:len(filed)]]
                if delete_all_claimed(session, self.name, ids) != set(ids):
                    raise _ClaimLost  # another runner holds one now: one by one, each is filed or left to it
                return filed
        except Exception:  # the caller files them again one by one: a failure is reported there
            return None

    def _file_alone(self, session: Session, parsed: Parsed, ended: list[MailFiled]) -> _Failure | None:
        """File or quarantine one message in its own savepoint; returns what failed, if anything did."""
        try:
            with session.begin_nested():
                if not delete_claimed(session, self.name, parsed.item.id):
                    return None  # our lease ran out and another runner holds it now
                mail = self._file_mail(session, parsed)
        except (PostdeskError, SQLAlchemyError) as exc:
            self.stats.retried += 1
            return _Failure(f"{type(exc).__name__}: {exc}", _transient(exc))
        except Exception as exc:  # a bug must not lose mail: count it, retry, then quarantine
            log.exception("spool item %d failed in the pipeline", parsed.item.id)
            self.stats.retried += 1
            return _Failure(f"{type(exc).__name__}: {exc}", transient=False)
        self._count(mail, ended)
        return None

    def _file_mail(self, session: Session, parsed: Parsed) -> MailFiled:
        """File or quarantine one message whose spool row the caller deleted under its claim."""
        started = time.monotonic() - parsed.seconds  # the parse is part of what the mail cost
        item, result = parsed.item, parsed.result
        if isinstance(result, UnparseableMessage):
            _quarantine(session, item, f"unparseable: {result}")
            return MailFiled("-", "-", FilingOutcome.QUARANTINED, "parse", _since(started))
        delivery = run_pipeline(Delivery(session, result, self._helpdesk, utcnow(), self._outbound,
                                         self._spam, self._dkim_dns, spam_tokens=parsed.spam_tokens))
        outcome = delivery.outcome
        if outcome is None:  # every full pipeline decides; only a pipeline cut short by a bug would not
            raise RuntimeError(f"the pipeline ended {delivery.message.message_id} without an outcome")
        mask = delivery.ticket.mask if delivery.ticket is not None else "-"
        return MailFiled(delivery.message.message_id, mask, outcome, delivery.decided_by, _since(started))

    def _count(self, mail: MailFiled | None, ended: list[MailFiled]) -> None:
        """Add a filed mail to the stats and to what the log will say."""
        if mail is None:
            return
        if mail.outcome is FilingOutcome.DUPLICATE:
            self.stats.duplicates += 1
        elif mail.outcome is FilingOutcome.QUARANTINED:
            self.stats.quarantined += 1
        else:
            self.stats.filed += 1
        ended.append(mail)

    def _record_failure(self, session: Session, parsed: Parsed, error: str, started: float,
                        ended: list[MailFiled]) -> None:
        """Count a failed attempt on the spool row; the last one allowed quarantines the mail."""
        item = parsed.item
        attempts = item.attempts + 1
        if attempts < MAX_ATTEMPTS:
            log.warning("spool item %d failed (attempt %d): %s", item.id, attempts, error)
            note_attempt(session, self.name, item.id, attempts, error, keep_claim=False)
            return
        with session.begin_nested():
            if delete_claimed(session, self.name, item.id):
                _quarantine(session, item, f"failed {attempts} times: {error}")
                self.stats.quarantined += 1
                message_id = parsed.result.message_id if isinstance(parsed.result, InboundMessage) else "-"
                ended.append(MailFiled(message_id, "-", FilingOutcome.QUARANTINED, f"failed {attempts} times",
                                       _since(started)))


class _ClaimLost(Exception):
    """A group's mail whose claim ran out while it was filed (mailgate.spool_claims)."""


class _Failure(NamedTuple):
    error: str
    transient: bool  # another transaction's doing (a deadlock, a serialization failure): try again at once


_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def _transient(exc: Exception) -> bool:
    """Another runner's doing, over by the time this one committed: a deadlock, or a ticket it just
    opened for the same thread (ThreadRace: the retry joins it)."""
    return isinstance(exc, ThreadRace) or getattr(getattr(exc, "orig", None), "sqlstate", None) in _TRANSIENT_SQLSTATES


def parse_spooled(item: Spooled) -> Parsed:
    started = time.monotonic()
    try:
        result: InboundMessage | UnparseableMessage = parse_message(item.raw, item.envelope)
    except UnparseableMessage as exc:
        result = exc
    return Parsed(item, result, time.monotonic() - started)


def _since(started: float) -> int:
    """Milliseconds from a time.monotonic() reading until now."""
    return round((time.monotonic() - started) * 1000)


def _quarantine(session: Session, item: Spooled, reason: str) -> None:
    quarantine_raw(session, item.raw, item.envelope, item.received_at, reason)


class RunnerProcess:
    """A SpoolRunner in a child process: woken after each spool commit, drained and joined on stop.

    It sets `filed` after each commit that filed mail, so the outbox in the parent sends the
    acknowledgements and notifications it queued at once rather than at its next look.

    The child ignores SIGINT and SIGTERM: shutdown is the parent's to order (sessions in flight
    first, then the spool writer, then this), and a Ctrl-C reaching the whole process group must not
    cut that order short. It stops by itself if the parent dies. Its log records go to the parent's
    handlers, so there is one place that decides where logs are written.
    """

    def __init__(self, settings: Settings, turns: WriteTurns | None = None) -> None:
        """`turns`: on SQLite, the daemon's database's (core.db.Database.turns), given to the child's database too."""
        self._context = multiprocessing.get_context(START_METHOD)
        self._settings, self._turns = settings, turns
        self._wake, self._stop = ProcessFlag(self._context), ProcessFlag(self._context)
        self.filed = ProcessFlag(self._context)
        self._logs: multiprocessing.Queue[logging.LogRecord] = self._context.Queue()
        handlers = logging.getLogger().handlers or [h for h in (logging.lastResort,) if h is not None]
        self._listener = QueueListener(self._logs, *handlers, respect_handler_level=True)
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> RunnerProcess:
        self._listener.start()
        self._spawn()
        return self

    def wake(self) -> None:
        self._wake.set()

    def keep_alive(self) -> None:
        """Start a new child if the last one died: spooled mail must not wait for a restart of serve."""
        if self._process is not None and not self._process.is_alive() and not self._stop.is_set():
            log.error("spool runner exited with %s; starting another", self._process.exitcode)
            if self._turns is not None:
                self._turns.renew(self._context)
            self._spawn()

    def stop(self) -> int | None:
        """Let the child drain what is spooled and exit; returns its exit code."""
        self._stop.set()
        self._wake.set()
        if self._process is not None:
            self._process.join()
        self._listener.stop()
        return None if self._process is None else self._process.exitcode

    def _spawn(self) -> None:
        self._process = self._context.Process(
            target=_run_child, name="spool-runner",
            args=(self._settings, self._turns, self._wake, self._stop, self.filed, self._logs,
                  logging.getLogger().level))
        self._process.start()


def _run_child(settings: Settings, turns: WriteTurns | None, wake: Flag, stop: Flag, filed: Flag,
               logs: multiprocessing.Queue[logging.LogRecord], level: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(RUNNER_NICENESS)
    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(logs)]
    root.setLevel(level)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_stop_with_parent, args=(parent.sentinel, turns, stop, wake), daemon=True).start()
    db = open_configured(settings.database)
    if turns is not None:
        db.turns = turns
    try:
        SpoolRunner(db, settings, wake=wake, filed=filed, log_each_mail=True).run(stop)
    finally:
        db.dispose()


def _stop_with_parent(sentinel: int, turns: WriteTurns | None, stop: Flag, wake: Flag) -> None:
    """An orphan files what is spooled and exits, rather than run on unsupervised."""
    wait([sentinel])
    if turns is not None:
        turns.abandon()
    stop.set()
    wake.set()
