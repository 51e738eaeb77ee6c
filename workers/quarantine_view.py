"""Shows the quarantine: what could not be filed, when, and why."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from core.db import Database
from core.models import QuarantineItem


def print_quarantine(db: Database, as_json: bool) -> None:
    with db.read() as session:
        items = session.scalars(select(QuarantineItem).order_by(QuarantineItem.id.desc())).all()
        rows = [{"id": q.id, "received": q.received_at.isoformat(), "source": q.source,
                 "mail_from": q.mail_from, "rcpt_tos": q.rcpt_tos, "reason": q.reason} for q in items]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table("id", "received", "source", "from", "reason")
    for row in rows:
        table.add_row(str(row["id"]), row["received"][:19], row["source"], row["mail_from"], row["reason"])
    Console().print(table)
