"""The filter's durable memory: per-token spam and not-spam counts in the database, shared by every process.

Counts only ever change by adding (`n = n + :delta` in one upsert), rows in token order, so two
processes training at once both land and never deadlock; untraining adds a negative delta.

Every change also adds 1 to the `changes` row of spam_totals, in the same transaction: the training
generation. Reading counts is what made scoring slow, so each process remembers what the tokens it
has read say (their spam probabilities: fixed while the counts and totals are), per database, for
one generation only. Each scoring reads the totals and the generation in one small query; when
another process (or this one) has trained since, what was remembered is dropped and read afresh.
A token is remembered only when the query that read it also saw the same generation (one
statement, one snapshot, even under PostgreSQL's READ COMMITTED), and a transaction that has
changed counts itself shares nothing until it ends: its changes may still be rolled back.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from sqlalchemy import FromClause, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from core.models import SpamToken, SpamTotal
from spam.scoring import DEFAULT_SCORING, Counts, Evidence, Scoring, token_evidence

SPAM, HAM = "spam", "ham"
CHANGES = "changes"  # the spam_totals row counting every change of the counts: the training generation
LOOKUP_CHUNK = 500  # bound parameters per IN list, well under any database's limit
WRITE_CHUNK = 2_000
REMEMBERED_TOKENS = 300_000  # per database and process (~50 MB at most); past it, start again
_WROTE = "spam.statistics.wrote"
_TOTALS_SQL = "SELECT verdict, messages FROM spam_totals"
_GENERATION_SQL = f"SELECT '', messages, 0 FROM spam_totals WHERE verdict = '{CHANGES}'"


@dataclass
class CountChanges:
    """Deltas gathered in memory (one mail, or a batch of them) and written in one go."""

    tokens: Counter[tuple[str, str]] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)

    def add(self, tokens: Collection[str], verdict: str, delta: int = 1) -> None:
        self.messages[verdict] += delta
        for token in tokens:
            self.tokens[(token, verdict)] += delta

    def per_token(self) -> dict[str, tuple[int, int]]:
        merged: dict[str, list[int]] = {}
        for (token, verdict), delta in self.tokens.items():
            merged.setdefault(token, [0, 0])[0 if verdict == SPAM else 1] += delta
        return {t: (s, h) for t, (s, h) in merged.items() if s or h}


@dataclass
class Learnt:
    """What the filter knew at one training generation: the totals, and what the tokens read so far say."""

    generation: int
    totals: Counts
    scoring: Scoring = DEFAULT_SCORING
    remembered: dict[str, Evidence | None] = field(default_factory=dict)  # None: no evidence (unseen or weak)

    def evidence(self, session: Session, tokens: Collection[str]) -> dict[str, Evidence]:
        """The evidence of each token that is evidence; the ones not remembered read in one query per few hundred.

        Probabilities rather than counts are remembered: with the totals, they are fixed for a
        generation. A token nearer 0.5 than the minimum deviation is remembered as no evidence at all:
        most of a mail's words are, and scoring then never looks at them again.
        """
        remembered = self.remembered
        found = {t: p for t in tokens if (p := remembered.get(t)) is not None}
        missing = [t for t in tokens if t not in remembered]
        least = self.scoring.min_deviation
        for start in range(0, len(missing), LOOKUP_CHUNK):
            chunk = missing[start:start + LOOKUP_CHUNK]
            counts, generation = _lookup(session, chunk)
            read = {t: e for t, e in token_evidence(counts, self.totals, self.scoring).items()
                    if abs(e[0] - 0.5) >= least}
            found.update(read)
            if generation == self.generation:  # read at the generation this memory is for
                if len(remembered) > REMEMBERED_TOKENS:
                    remembered.clear()
                remembered.update(dict.fromkeys(chunk))
                remembered.update(read)
        return found


# One memory per database (its connection pool, which every session of an engine shares) in this process.
_MEMORY: weakref.WeakKeyDictionary[object, Learnt] = weakref.WeakKeyDictionary()


def learnt(session: Session, scoring: Scoring = DEFAULT_SCORING) -> Learnt:
    """What the filter knows now: the totals and generation read in one query, token probabilities from memory."""
    generation, trained = _read_totals(session)
    if session.info.get(_WROTE):  # this transaction's own changes are not yet everybody's
        return Learnt(generation, trained, scoring)
    pool = session.connection().engine.pool
    memory = _MEMORY.get(pool)
    if memory is None or (memory.generation, memory.totals, memory.scoring) != (generation, trained, scoring):
        memory = _MEMORY[pool] = Learnt(generation, trained, scoring)
    return memory


def totals(session: Session) -> Counts:
    """How many mails were trained as spam and as not spam."""
    return _read_totals(session)[1]


def token_count(session: Session) -> int:
    """How many distinct tokens the filter has counts for."""
    return session.scalar(select(func.count()).select_from(SpamToken)) or 0


def token_counts(session: Session, tokens: Collection[str]) -> dict[str, Counts]:
    """The counts of those tokens the filter has seen, read now (for looking; scoring reads `learnt`)."""
    wanted, found = sorted(tokens), {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        found.update(_lookup(session, wanted[start:start + LOOKUP_CHUNK])[0])
    return found


def _read_totals(session: Session) -> tuple[int, Counts]:
    """The generation and the totals, in one driver-level query (this runs once per mail scored)."""
    rows: dict[str, int] = dict(session.connection().exec_driver_sql(_TOTALS_SQL).all())
    return rows.get(CHANGES, 0), Counts(spam=max(rows.get(SPAM, 0), 0), ham=max(rows.get(HAM, 0), 0))


def _lookup(session: Session, tokens: list[str]) -> tuple[dict[str, Counts], int]:
    """The tokens' rows and, in the same statement (the same snapshot), the generation they belong to.

    Driver-level SQL: compiling an expanding IN through SQLAlchemy cost more than running it.
    """
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = (f"SELECT token, spam, ham FROM spam_tokens WHERE token IN ({', '.join([mark] * len(tokens))})"
           f" UNION ALL {_GENERATION_SQL}")
    found, generation = {}, 0
    for token, spam, ham in connection.exec_driver_sql(sql, tuple(tokens)).all():
        if token:
            found[token] = Counts(max(spam, 0), max(ham, 0))
        else:
            generation = spam
    return found, generation


def apply_changes(session: Session, changes: CountChanges) -> None:
    """Add the deltas to the stored counts, creating rows as needed, and count one change; the caller commits."""
    per_token = changes.per_token()
    message_rows: list[Mapping[str, object]] = [{"verdict": v, "messages": d}
                                                for v, d in sorted(changes.messages.items()) if d]
    if not per_token and not message_rows:
        return
    session.info[_WROTE] = True
    rows = [(t, s, h) for t, (s, h) in sorted(per_token.items())]
    for start in range(0, len(rows), WRITE_CHUNK):
        _add_token_rows(session, rows[start:start + WRITE_CHUNK])
    message_rows.append({"verdict": CHANGES, "messages": 1})
    _add_rows(session, SpamTotal.__table__, "verdict", ("messages",), sorted(message_rows, key=itemgetter("verdict")))


_ADD_TOKENS_SQLITE = ("INSERT INTO spam_tokens (token, spam, ham) VALUES (?, ?, ?) ON CONFLICT (token) DO UPDATE"
                      " SET spam = spam_tokens.spam + excluded.spam, ham = spam_tokens.ham + excluded.ham")
_ADD_TOKENS_POSTGRESQL = ("INSERT INTO spam_tokens (token, spam, ham)"
                          " SELECT * FROM unnest(%s::varchar[], %s::integer[], %s::integer[])"
                          " ON CONFLICT (token) DO UPDATE"
                          " SET spam = spam_tokens.spam + excluded.spam, ham = spam_tokens.ham + excluded.ham")


def _add_token_rows(session: Session, rows: Sequence[tuple[str, int, int]]) -> None:
    """The token counts' upsert at the driver: one statement for PostgreSQL (arrays), one prepared
    statement run per row for SQLite. A verdict moves a few hundred tokens, and compiling a
    multi-row VALUES of that size through SQLAlchemy cost more than writing them (28 ms a verdict)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        tokens, spams, hams = (list(column) for column in zip(*rows))
        connection.exec_driver_sql(_ADD_TOKENS_POSTGRESQL, (tokens, spams, hams))
    else:
        connection.exec_driver_sql(_ADD_TOKENS_SQLITE, list(rows))


def _add_rows(session: Session, table: FromClause, key: str, counters: tuple[str, ...],
              rows: Sequence[Mapping[str, object]]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n: atomic on SQLite and PostgreSQL."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table).values(rows)
    columns = insert.table.c
    session.execute(insert.on_conflict_do_update(
        index_elements=[key], set_={name: columns[name] + insert.excluded[name] for name in counters}))


@event.listens_for(Session, "after_transaction_end")
def _shared_again(session: Session, transaction: SessionTransaction) -> None:
    """Committed or rolled back, the transaction's changes are no longer its own."""
    if transaction.parent is None:
        session.info.pop(_WROTE, None)
