"""The filter's durable memory: per-token spam and not-spam counts in the database, shared by every process.

Counts only ever change by adding (`n = n + :delta` in one upsert), rows in token order, so two
processes training at once both land and never deadlock; untraining adds a negative delta.
Counts read are remembered for the rest of the transaction (a batch of mail shares most words), and
forgotten as soon as this transaction changes any.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.db import cached
from core.models import SpamToken, SpamTotal
from spam.scoring import Counts

SPAM, HAM = "spam", "ham"
LOOKUP_CHUNK = 500  # bound parameters per IN list, well under any database's limit
WRITE_CHUNK = 2_000
_READ = "spam.statistics.read"


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


def totals(session: Session) -> Counts:
    """How many mails were trained as spam and as not spam."""
    read = _read(session)
    if "" not in read:
        rows: dict[str, int] = {v: n for v, n in session.execute(select(SpamTotal.verdict, SpamTotal.messages))}
        read[""] = Counts(spam=max(rows.get(SPAM, 0), 0), ham=max(rows.get(HAM, 0), 0))
    return read[""]  # type: ignore[return-value]


def token_counts(session: Session, tokens: Collection[str]) -> dict[str, Counts]:
    """The counts of those tokens the filter has seen: the ones not read yet in one query per few hundred."""
    read = _read(session)
    missing = sorted(t for t in tokens if t not in read)
    for start in range(0, len(missing), LOOKUP_CHUNK):
        chunk = missing[start:start + LOOKUP_CHUNK]
        read.update(dict.fromkeys(chunk))  # unseen tokens are remembered as unseen
        rows = _lookup(session, chunk)
        read.update((token, Counts(max(spam, 0), max(ham, 0))) for token, spam, ham in rows)
    return {t: counts for t in tokens if (counts := read[t]) is not None}


def _lookup(session: Session, tokens: list[str]) -> Iterable[tuple[str, int, int]]:
    """One driver-level IN query: compiling an expanding IN through SQLAlchemy cost more than running it."""
    connection = session.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = f"SELECT token, spam, ham FROM spam_tokens WHERE token IN ({', '.join([mark] * len(tokens))})"
    return connection.exec_driver_sql(sql, tuple(tokens))  # type: ignore[return-value]


def _read(session: Session) -> dict[str, Counts | None]:
    """Counts read in this transaction; the empty token (never a real one) holds the totals."""
    return cached(session, _READ, dict)


def apply_changes(session: Session, changes: CountChanges) -> None:
    """Add the deltas to the stored counts, creating rows as needed; the caller commits."""
    _read(session).clear()
    per_token = changes.per_token()
    rows = [{"token": t, "spam": s, "ham": h} for t, (s, h) in sorted(per_token.items())]
    for start in range(0, len(rows), WRITE_CHUNK):
        _add_rows(session, SpamToken.__table__, "token", ("spam", "ham"), rows[start:start + WRITE_CHUNK])
    message_rows = [{"verdict": v, "messages": d} for v, d in sorted(changes.messages.items()) if d]
    if message_rows:
        _add_rows(session, SpamTotal.__table__, "verdict", ("messages",), message_rows)


def _add_rows(session: Session, table: object, key: str, counters: tuple[str, ...],
              rows: list[Mapping[str, object]]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n: atomic on SQLite and PostgreSQL."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table).values(rows)  # type: ignore[arg-type]
    columns = insert.table.c  # type: ignore[attr-defined]
    session.execute(insert.on_conflict_do_update(
        index_elements=[key], set_={name: columns[name] + insert.excluded[name] for name in counters}))
