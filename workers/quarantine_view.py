"""Shows the quarantine: what could not be filed, when, and why."""

from __future__ import annotations

from sqlalchemy import select

from core.db import Database
from core.models import QuarantineItem
from workers.output import print_json, print_table


def print_quarantine(db: Database, as_json: bool) -> None:
    with db.read() as session:
        items = session.scalars(select(QuarantineItem).order_by(QuarantineItem.id.desc())).all()
        rows = [{"id": q.id, "received": q.received_at.isoformat(), "source": q.source,
                 "mail_from": q.mail_from, "rcpt_tos": q.rcpt_tos, "reason": q.reason} for q in items]
    if as_json:
        print_json(rows)
        return
    print_table(["id", "received", "source", "from", "reason"],
                [[str(r["id"]), r["received"][:19], r["source"], r["mail_from"], r["reason"]] for r in rows])
