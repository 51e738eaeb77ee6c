"""The read side of the worker's desk: tickets, conversations and search results as plain dicts.

Written in SQL through a Connection, without the ORM, for two reasons: a read command must start
and answer within 0.3 s on a million tickets, and importing the ORM and the models alone costs
half of that; and each view is one or two indexed queries whatever the page holds.
The field names are the stable JSON names of `postdesk tickets/show/search --json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, text

from core.errors import AMBIGUOUS_SHOWN, AmbiguousMask, TicketNotFound, UsageError
from core.masks import normalize_mask
from core.search import fts5_query, search_terms, tsquery_text

DEFAULT_STATUSES = ("open", "waiting")
STATUSES = ("open", "waiting", "closed", "deleted", "spam")  # spam: held by the filter (core/spam_hold.py)
HELD = "spam"  # Status.SPAM, spelled here because read commands do not load the ORM
SET_ASIDE = ("deleted", HELD)  # left out of search and every list unless asked for
SEARCHED = tuple(s for s in STATUSES if s not in SET_ASIDE)  # what a search looks in by default
PRIORITIES = ("low", "normal", "high", "urgent")
SORTS = {  # name -> ORDER BY, ties broken by id so paging is stable
    "updated": "t.updated_at {dir}, t.id {dir}",
    "created": "t.created_at {dir}, t.id {dir}",
    "priority": "CASE t.priority WHEN 'urgent' THEN 3 WHEN 'high' THEN 2 WHEN 'normal' THEN 1 ELSE 0 END {dir},"
                " t.updated_at {dir}, t.id {dir}",
    "mask": "t.mask {dir}",
    "spam": "t.spam_score {dir}, t.id {dir}",
}
NO_OWNER = "none"
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class TicketFilter:
    """What `postdesk tickets` narrows by; an empty tuple means no narrowing on that field."""

    statuses: tuple[str, ...] = DEFAULT_STATUSES
    groups: tuple[str, ...] = ()
    buckets: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()  # worker addresses, or NO_OWNER
    priorities: tuple[str, ...] = ()
    waiting_on_customer: bool = False
    created_from: datetime | None = None
    created_to: datetime | None = None
    sort: str = "updated"
    descending: bool = True
    limit: int = 50
    page: int = 1


@dataclass
class _Where:
    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    expanding: list[str] = field(default_factory=list)

    def add(self, clause: str, **params: Any) -> None:
        self.clauses.append(clause)
        self.params.update(params)

    def any_of(self, column: str, name: str, values: Sequence[Any]) -> None:
        self.add(f"{column} IN :{name}", **{name: list(values)})
        self.expanding.append(name)

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "1 = 1"


_TICKET_COLUMNS = """
    t.id, t.mask, t.subject, t.status, t.priority, t.created_at, t.updated_at, t.last_action,
    t.spam_score, t.interesting_words, t.spam_training, t.waiting_until,
    g.name AS group_name, b.name AS bucket_name, w.email AS owner_email, o.name AS organization_name,
    fw.email AS first_wrote, lw.email AS last_wrote,
    (SELECT count(*) FROM messages m WHERE m.ticket_id = t.id) AS message_count"""
_TICKET_JOINS = """
    JOIN groups g ON g.id = t.group_id
    JOIN buckets b ON b.id = t.bucket_id
    LEFT JOIN workers w ON w.id = t.owner_id
    LEFT JOIN organizations o ON o.id = t.organization_id
    LEFT JOIN addresses fw ON fw.id = t.first_wrote_id
    LEFT JOIN addresses lw ON lw.id = t.last_wrote_id"""


def list_tickets(conn: Connection, wanted: TicketFilter = TicketFilter()) -> list[dict[str, Any]]:
    """One page of tickets matching the filter, in the chosen order."""
    if wanted.sort not in SORTS:
        raise UsageError(f"cannot sort by {wanted.sort!r}: choose one of {', '.join(SORTS)}")
    if not 1 <= wanted.limit <= MAX_PAGE_SIZE or wanted.page < 1:
        raise UsageError(f"a page holds 1 to {MAX_PAGE_SIZE} tickets and pages count from 1")
    where = _where(wanted)
    order = SORTS[wanted.sort].format(dir="DESC" if wanted.descending else "ASC")
    statement = text(f"SELECT {_TICKET_COLUMNS} FROM tickets t {_TICKET_JOINS} WHERE {where.sql()}"
                     f" ORDER BY {order} LIMIT :limit OFFSET :offset")
    statement = statement.bindparams(*(bindparam(name, expanding=True) for name in where.expanding))
    rows = conn.execute(statement, {**where.params, "limit": wanted.limit,
                                    "offset": (wanted.page - 1) * wanted.limit}).mappings().all()
    return _with_recipients(conn, rows)


def _where(wanted: TicketFilter) -> _Where:
    where = _Where()
    if set(wanted.statuses) != set(STATUSES):
        where.add(_status_literals(wanted.statuses))
    if wanted.groups:
        where.any_of("lower(g.name)", "groups", [g.lower() for g in wanted.groups])
    if wanted.buckets:
        where.any_of("lower(b.name)", "buckets", [b.lower() for b in wanted.buckets])
    _owner_clause(where, wanted.owners)
    if wanted.priorities:
        where.any_of("t.priority", "priorities", wanted.priorities)
    if wanted.waiting_on_customer:
        where.add("t.last_action = 'worker_replied'")
    if wanted.created_from is not None:
        where.add("t.created_at >= :created_from", created_from=_stored(wanted.created_from))
    if wanted.created_to is not None:
        where.add("t.created_at < :created_to", created_to=_stored(wanted.created_to))
    return where


def _status_literals(statuses: Sequence[str]) -> str:
    """Statuses written into the SQL, not bound: only then can SQLite see that the query fits the
    partial index of open and waiting tickets (core.models.ACTIVE_STATUSES_SQL)."""
    unknown = set(statuses) - set(STATUSES)
    if unknown:
        raise UsageError(f"no status {sorted(unknown)[0]!r}: choose from {', '.join(STATUSES)}")
    return "t.status IN (" + ", ".join(f"'{status}'" for status in statuses) + ")"


def _owner_clause(where: _Where, owners: tuple[str, ...]) -> None:
    emails = [o.lower() for o in owners if o != NO_OWNER]
    parts = ["t.owner_id IS NULL"] if NO_OWNER in owners else []
    if emails:
        parts.append("w.email IN :owners")
        where.params["owners"] = emails
        where.expanding.append("owners")
    if parts:
        where.clauses.append("(" + " OR ".join(parts) + ")")


def _stored(moment: datetime) -> datetime:
    """How the columns hold time: naive UTC (core.models.UTCDateTime)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _with_recipients(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    ids = [row["id"] for row in rows]
    recipients: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        found = conn.execute(text(
            "SELECT r.ticket_id, a.email FROM ticket_recipients r JOIN addresses a ON a.id = r.address_id"
            " WHERE r.ticket_id IN :ids ORDER BY a.id").bindparams(bindparam("ids", expanding=True)), {"ids": ids})
        for ticket_id, email in found:
            recipients[ticket_id].append(email)
    return [ticket_fields(row, recipients[row["id"]]) for row in rows]


def ticket_fields(row: Any, recipients: list[str]) -> dict[str, Any]:
    """The public fields of a ticket; the private id is deliberately absent."""
    return {
        "mask": row["mask"],
        "subject": row["subject"],
        "status": row["status"],
        "priority": row["priority"],
        "group": row["group_name"],
        "bucket": row["bucket_name"],
        "owner": row["owner_email"],
        "organization": row["organization_name"],
        "created": iso(row["created_at"]),
        "updated": iso(row["updated_at"]),
        "last_action": row["last_action"],
        "first_wrote": row["first_wrote"],
        "last_wrote": row["last_wrote"],
        "recipients": recipients,
        "message_count": row["message_count"],
        "waiting_until": iso(row["waiting_until"]),
        "spam_score": row["spam_score"],
        "interesting_words": _json(row["interesting_words"]) or [],
        "spam_training": row["spam_training"],
    }


def iso(value: datetime | str | None) -> str | None:
    """A stored UTC time as ISO 8601 with its offset; SQLite hands back text, PostgreSQL a datetime."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=timezone.utc).isoformat()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def awaiting_answer_count(conn: Connection) -> int:
    """Open tickets whose last word is a customer's (new, or answered by a recipient): the desk's badge."""
    return int(conn.execute(text("SELECT count(*) FROM tickets WHERE status = 'open'"
                                 " AND last_action IN ('new', 'recipient_replied')")).scalar() or 0)


def resolve_mask(conn: Connection, given: str) -> str:
    """The one mask the user meant: given whole, or by its first characters when only one ticket fits."""
    wanted = normalize_mask(given)
    if not wanted:
        raise UsageError("a mask is empty")
    exact = conn.execute(text("SELECT mask FROM tickets WHERE mask = :mask"), {"mask": wanted}).scalar()
    if exact is not None:
        return str(exact)
    merged = conn.execute(text("SELECT t.mask FROM merged_masks m JOIN tickets t ON t.id = m.ticket_id "
                               "WHERE m.mask = :mask"), {"mask": wanted}).scalar()
    if merged is not None:
        return str(merged)  # a ticket merged into another: its mask leads there (core.merging)
    # a range on the unique index, not LIKE: `_` and `%` in what the user typed mean nothing
    fits = conn.execute(text("SELECT mask FROM tickets WHERE mask >= :low AND mask < :high ORDER BY mask LIMIT :n"),
                        {"low": wanted, "high": wanted + "\uffff", "n": AMBIGUOUS_SHOWN}).scalars().all()
    if not fits:
        raise TicketNotFound(given)
    if len(fits) > 1:
        raise AmbiguousMask(given, list(fits))
    return str(fits[0])


def show_ticket(conn: Connection, given: str) -> dict[str, Any]:
    """One ticket's fields and its conversation (messages, comments, bounces) in order."""
    mask = resolve_mask(conn, given)
    row = conn.execute(text(f"SELECT {_TICKET_COLUMNS} FROM tickets t {_TICKET_JOINS} WHERE t.mask = :mask"),
                       {"mask": mask}).mappings().one()
    fields = _with_recipients(conn, [row])[0]
    fields["messages"] = _messages(conn, row["id"])
    return fields


def _messages(conn: Connection, ticket_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(text(
        "SELECT m.id, m.message_id, a.email, a.name, m.to_addrs, m.cc_addrs, m.subject, m.date, m.received_at,"
        " m.kind, m.unverified_sender, m.text, wk.email AS author"
        " FROM messages m JOIN addresses a ON a.id = m.sender_id LEFT JOIN workers wk ON wk.id = m.author_worker_id"
        " WHERE m.ticket_id = :ticket ORDER BY m.id"), {"ticket": ticket_id}).mappings().all()
    attachments = _attachments(conn, ticket_id)
    return [{
        "message_id": r["message_id"],
        "from": r["email"],
        "from_name": r["name"],
        "author": r["author"],
        "to": [a["email"] for a in _json(r["to_addrs"]) or []],
        "cc": [a["email"] for a in _json(r["cc_addrs"]) or []],
        "subject": r["subject"],
        "date": iso(r["date"]),
        "received": iso(r["received_at"]),
        "kind": r["kind"],
        "unverified_sender": bool(r["unverified_sender"]),
        "text": r["text"],
        "attachments": attachments.get(r["id"], []),
    } for r in rows]


def _attachments(conn: Connection, ticket_id: int) -> dict[int, list[dict[str, Any]]]:
    """Each message's attachments, numbered through the whole ticket as `postdesk attachment` counts them."""
    rows = conn.execute(text(
        "SELECT at.message_id, at.filename, at.content_type, bl.size, at.blob_sha256"
        " FROM attachments at JOIN messages m ON m.id = at.message_id JOIN blobs bl ON bl.sha256 = at.blob_sha256"
        " WHERE m.ticket_id = :ticket ORDER BY m.id, at.position"), {"ticket": ticket_id})
    found: dict[int, list[dict[str, Any]]] = {}
    for number, (message_id, filename, content_type, size, sha256) in enumerate(rows, 1):
        found.setdefault(message_id, []).append({"number": number, "filename": filename,
                                                 "content_type": content_type, "size": size, "sha256": sha256})
    return found


def attachment_data(conn: Connection, given: str, number: int) -> tuple[dict[str, Any], bytes]:
    """The ticket's Nth attachment (counted as `show` lists them) and its bytes."""
    mask = resolve_mask(conn, given)
    if number < 1:
        raise UsageError("attachments are numbered from 1, as `postdesk show` lists them")
    row = conn.execute(text(
        "SELECT at.filename, at.content_type, bl.size, bl.data FROM attachments at"
        " JOIN messages m ON m.id = at.message_id JOIN tickets t ON t.id = m.ticket_id"
        " JOIN blobs bl ON bl.sha256 = at.blob_sha256"
        " WHERE t.mask = :mask ORDER BY m.id, at.position LIMIT 1 OFFSET :skip"),
        {"mask": mask, "skip": number - 1}).mappings().first()
    if row is None:
        raise UsageError(f"{mask} has no attachment {number}")
    return ({"filename": row["filename"], "content_type": row["content_type"], "size": row["size"]},
            bytes(row["data"]))


def message_html(conn: Connection, given: str, number: int) -> str:
    """The stored HTML of the ticket's Nth message (counted as `show` lists them), "" when it has none."""
    mask = resolve_mask(conn, given)
    if number < 1:
        raise UsageError("messages are numbered from 1, as `postdesk show` lists them")
    found = conn.execute(text(
        "SELECT m.html FROM messages m JOIN tickets t ON t.id = m.ticket_id"
        " WHERE t.mask = :mask ORDER BY m.id LIMIT 1 OFFSET :skip"), {"mask": mask, "skip": number - 1}).first()
    if found is None:
        raise UsageError(f"{mask} has no message {number}")
    return str(found[0] or "")


def html_message_numbers(conn: Connection, given: str) -> set[int]:
    """Which of the ticket's messages (numbered as `show` lists them) carry HTML, in one query."""
    mask = resolve_mask(conn, given)
    rows = conn.execute(text(
        "SELECT m.html <> '' FROM messages m JOIN tickets t ON t.id = m.ticket_id"
        " WHERE t.mask = :mask ORDER BY m.id"), {"mask": mask}).scalars()
    return {number for number, has_html in enumerate(rows, 1) if has_html}


SEARCH_LIMIT = 20
SCANNED_PER_TICKET = 20  # messages read per ticket wanted before every match is ranked (_search_sqlite)


def search_tickets(conn: Connection, query: str, limit: int = SEARCH_LIMIT,
                   statuses: tuple[str, ...] = STATUSES) -> list[dict[str, Any]]:
    """Tickets whose subject or messages hold every word, best match first (BM25 / ts_rank)."""
    terms = search_terms(query)
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise UsageError(f"a page holds 1 to {MAX_PAGE_SIZE} tickets")
    if conn.dialect.name == "sqlite":
        rows = _search_sqlite(conn, fts5_query(terms), limit, statuses, scan=limit * SCANNED_PER_TICKET)
        if len(rows) < limit:  # the best messages did not hold enough tickets of those statuses: all of them
            rows = _search_sqlite(conn, fts5_query(terms), limit, statuses, scan=-1)
    else:
        hits = ("SELECT m.ticket_id, max(ts_rank(m.search_vector, plainto_tsquery('english', :query))) AS score"
                " FROM messages m WHERE m.search_vector @@ plainto_tsquery('english', :query) GROUP BY m.ticket_id")
        rows = _best_tickets(conn, hits, "DESC", {"query": tsquery_text(terms), "statuses": list(statuses),
                                                  "limit": limit})
    return _with_recipients(conn, rows)


def _search_sqlite(conn: Connection, query: str, limit: int, statuses: tuple[str, ...],
                   scan: int) -> Sequence[RowMapping]:
    """The best tickets among the `scan` best messages (-1: every match), by their best message's BM25.

    The matches are taken first, ranked, then joined: joined directly, SQLite asks FTS5 for each
    message's rank again and a common pair of words takes ten times as long. A ticket's score is its
    best message's, so the best tickets are among the best messages: only those are joined up, not
    the thousands a common pair of words finds in a million tickets.
    """
    hits = ("WITH found AS MATERIALIZED (SELECT rowid AS id, rank FROM message_search"
            " WHERE message_search MATCH :query ORDER BY rank LIMIT :scan)"
            " SELECT m.ticket_id, min(found.rank) AS score FROM found JOIN messages m ON m.id = found.id"
            " GROUP BY m.ticket_id")
    # FTS5's rank is BM25 negated: lower is better
    return _best_tickets(conn, hits, "ASC", {"query": query, "statuses": list(statuses), "limit": limit,
                                             "scan": scan})


def _best_tickets(conn: Connection, hits: str, better: str, params: dict[str, Any]) -> Sequence[RowMapping]:
    """The best tickets are chosen on the score alone; only they are then joined up for display."""
    best = (f"SELECT hits.ticket_id, hits.score, st.updated_at FROM ({hits}) hits"
            f" JOIN tickets st ON st.id = hits.ticket_id WHERE st.status IN :statuses"
            f" ORDER BY hits.score {better}, st.updated_at DESC LIMIT :limit")
    statement = text(
        f"SELECT {_TICKET_COLUMNS}, best.score FROM ({best}) best JOIN tickets t ON t.id = best.ticket_id"
        f" {_TICKET_JOINS} ORDER BY best.score {better}, t.updated_at DESC"
    ).bindparams(bindparam("statuses", expanding=True))
    return conn.execute(statement, params).mappings().all()


def ticket_history(conn: Connection, given: str) -> list[dict[str, Any]]:
    """Every audit entry of the ticket (who or what changed it, when, how), oldest first."""
    mask = resolve_mask(conn, given)
    rows = conn.execute(text(
        "SELECT a.at, a.actor, a.action, a.detail FROM audit_log a JOIN tickets t ON t.id = a.ticket_id"
        " WHERE t.mask = :mask ORDER BY a.id"), {"mask": mask})
    return [{"at": iso(at), "actor": actor, "action": action, "detail": detail} for at, actor, action, detail in rows]


def held_count(conn: Connection) -> int:
    """How many tickets the spam filter holds for a verdict (the index on status, updated_at answers it)."""
    return int(conn.execute(text(f"SELECT count(*) FROM tickets WHERE status = '{HELD}'")).scalar_one())
