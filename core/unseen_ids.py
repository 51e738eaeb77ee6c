"""Message-IDs a transaction knows no message, thread key or awaited parent carries yet.

Threading asks about each id of a mail several times (its own id: a duplicate? an awaited parent?
each id it answers: a thread key? awaited by a ticket?). For new mail the answer is nearly always
"nothing", and each question was a query. `look_ahead` asks once for a whole batch's ids; an id it
found nowhere is *unseen*, and the lookups in core.threads and core.tickets answer "nothing" for it
without a query.

It holds only in a transaction no one else can write beside: SQLite's, which holds the one write
lock from its start. Under PostgreSQL's read-committed transactions another daemon may store one of
the ids a moment later, and threading must see it then (mailgate.runner looks ahead on SQLite only).

An unseen id stays true only while every write of a message, a thread key or a parent reference
says so (`seen`, in core.tickets, the one module that writes them). The set lives in the
transaction's cache (core.db.cached): it is forgotten when the transaction ends and on any
rollback, a savepoint's included, since that may have undone a write or a delete.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import BindParameter, bindparam, select, union
from sqlalchemy.orm import Session

from core.db import cached, run
from core.models import Message, ParentReference, ThreadKey

_KEY = "postdesk.unseen_ids"
_CHUNK = 500  # ids per query: well under every driver's limit on parameters


Table = type[Message] | type[ThreadKey] | type[ParentReference]
_TABLES: tuple[Table, ...] = (Message, ThreadKey, ParentReference)


def look_ahead(session: Session, message_ids: Iterable[str]) -> None:
    """Find out in one query per chunk which of these ids are stored anywhere; the others are unseen."""
    unseen = _unseen(session)
    ids = sorted(set(message_ids))
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        present = set(run(session, _STORED_ANYWHERE, {"ids": chunk}).scalars())
        for table in _TABLES:
            unseen[table].update(i for i in chunk if i not in present)


def is_unseen(session: Session, message_id: str, table: Table) -> bool:
    """True only when look_ahead found the id nowhere and nothing wrote it to this table since."""
    return message_id in _unseen(session)[table]


def seen(session: Session, message_id: str, table: Table) -> None:
    """This transaction is writing a row of this table under the id: from now on it is looked up there."""
    _unseen(session)[table].discard(message_id)


def _unseen(session: Session) -> dict[Table, set[str]]:
    return cached(session, _KEY, lambda: {table: set() for table in _TABLES})


# Built once, not per batch: building a statement costs about as much as running it.
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_STORED_ANYWHERE = union(
    select(Message.message_id).where(Message.message_id.in_(_IDS)),
    select(ThreadKey.message_id).where(ThreadKey.message_id.in_(_IDS)),
    select(ParentReference.message_id).where(ParentReference.message_id.in_(_IDS)),
)
