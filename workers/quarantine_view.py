"""Shows the quarantine: what could not be filed, when, and why."""

from __future__ import annotations

from core.db import Database
from core.quarantine import quarantined
from workers.output import print_json, print_table


def print_quarantine(db: Database, as_json: bool) -> None:
    with db.read() as session:
        rows = quarantined(session)
    if as_json:
        print_json(rows)
        return
    print_table(["id", "received", "source", "from", "reason"],
                [[str(r["id"]), str(r["received"])[:19], str(r["source"]), str(r["mail_from"]), str(r["reason"])]
                 for r in rows])
