"""`postdesk tickets`, `search`, `show` and `attachment`: the read side of the worker's desk.

They read through App.reader() and core.ticket_views, never the ORM: see there why.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from core.errors import UsageError
from core.ticket_views import (
    DEFAULT_STATUSES,
    MAX_PAGE_SIZE,
    NO_OWNER,
    PRIORITIES,
    SEARCH_LIMIT,
    SORTS,
    SEARCHED,
    STATUSES,
    TicketFilter,
    attachment_data,
    held_count,
    list_tickets,
    search_tickets,
    show_ticket,
    ticket_history,
)
from workers.app import App
from workers.conversation_view import print_conversation
from workers.options import as_worker_option
from workers.output import chosen_values, print_json, print_table
from workers.terminal_text import printable

STATUS_CHOICES = [*STATUSES, "all"]
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"]
TABLE_COLUMNS = ["mask", "subject", "status", "priority", "owner", "messages", "created", "updated"]


def _statuses(given: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    return chosen_values(given, STATUSES, default)


def _utc(moment: datetime | None) -> datetime | None:
    """Dates on the command line are UTC, as everywhere in postdesk."""
    return None if moment is None else moment.replace(tzinfo=timezone.utc)


def _owners(given: tuple[str, ...], worker: str | None) -> tuple[str, ...]:
    if "me" not in given:
        return given
    if not worker:
        raise UsageError("--owner me needs to know who you are: give --as WORKER or set POSTDESK_WORKER")
    return tuple(worker if owner == "me" else owner for owner in given)


@click.command()
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUS_CHOICES),
              help="Only tickets in this status (repeatable; `all` for every status). Default: open and waiting.")
@click.option("--group", "groups", multiple=True, metavar="NAME", help="Only tickets of this group (repeatable).")
@click.option("--bucket", "buckets", multiple=True, metavar="NAME", help="Only tickets in this bucket (repeatable).")
@click.option("--owner", "owners", multiple=True, metavar="WHO",
              help=f"Only tickets owned by WHO: `me`, a worker's address, or `{NO_OWNER}` (repeatable).")
@click.option("--priority", "priorities", multiple=True, type=click.Choice(PRIORITIES),
              help="Only tickets of this priority (repeatable).")
@click.option("--waiting-on-customer", is_flag=True, help="Only tickets whose last word was a worker's reply.")
@click.option("--created-from", type=click.DateTime(DATE_FORMATS), help="Created at or after this time (UTC).")
@click.option("--created-to", type=click.DateTime(DATE_FORMATS), help="Created before this time (UTC).")
@click.option("--sort", type=click.Choice(list(SORTS)), default="updated", show_default=True,
              help="Order of the list.")
@click.option("--reverse", is_flag=True, help="Oldest (or lowest) first instead of newest first.")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE_SIZE), default=50, show_default=True,
              help="Tickets per page.")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True, help="Which page.")
@as_worker_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON objects with stable field names.")
@click.pass_obj
def tickets(app: App, statuses: tuple[str, ...], groups: tuple[str, ...], buckets: tuple[str, ...],
            owners: tuple[str, ...], priorities: tuple[str, ...], waiting_on_customer: bool,
            created_from: datetime | None, created_to: datetime | None, sort: str, reverse: bool,
            limit: int, page: int, worker_email: str | None, as_json: bool) -> None:
    """List tickets, newest activity first: by default every ticket that is open or waiting.

    \b
    Examples:
      postdesk tickets
      postdesk tickets --owner me --priority urgent --priority high
      postdesk tickets --status all --group Billing --created-from 2026-11-01 --json
      postdesk tickets --owner none --sort created --reverse --page 2
    """
    wanted = TicketFilter(statuses=_statuses(statuses, DEFAULT_STATUSES), groups=groups, buckets=buckets,
                          owners=_owners(owners, worker_email), priorities=priorities,
                          waiting_on_customer=waiting_on_customer, created_from=_utc(created_from),
                          created_to=_utc(created_to), sort=sort, descending=not reverse, limit=limit, page=page)
    with app.reader() as conn:
        rows = list_tickets(conn, wanted)
        held = 0 if "spam" in wanted.statuses else held_count(conn)
    _print_list(rows, as_json)
    if held:  # on stderr: the list itself stays what a script reads
        click.echo(f"{held} held as spam, not listed: postdesk spam review", err=True)


@click.command()
@click.argument("words", nargs=-1, required=True)
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUS_CHOICES),
              help="Only tickets in this status (repeatable). Default: every status but deleted and spam.")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE_SIZE), default=SEARCH_LIMIT, show_default=True,
              help="How many tickets to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON objects with stable field names.")
@click.pass_obj
def search(app: App, words: tuple[str, ...], statuses: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Find tickets whose subject or messages contain every word, best match first.

    Words are matched whole, in any order, ignoring case and accents; `printers` also finds
    `printer` (English stemming).

    \b
    Examples:
      postdesk search printer fire
      postdesk search invoice refund --status closed --json
    """
    with app.reader() as conn:
        rows = search_tickets(conn, " ".join(words), limit, _statuses(statuses, SEARCHED))
    _print_list(rows, as_json)


def _print_list(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    print_table(TABLE_COLUMNS, [[row["mask"], row["subject"], row["status"], row["priority"], row["owner"] or "-",
                                 str(row["message_count"]), _minute(row["created"]), _minute(row["updated"])]
                                for row in rows])


def _minute(iso: str) -> str:
    return iso[:16].replace("T", " ")


@click.command()
@click.argument("mask")
@click.option("--history", is_flag=True, help="Also print the audit log: who or what changed the ticket, and when.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the ticket and its messages.")
@click.pass_obj
def show(app: App, mask: str, history: bool, as_json: bool) -> None:
    """Print a ticket's fields and its conversation: messages, comments and attachments, in order.

    MASK may be given whole or by its first characters when only one ticket fits (`XER-8`).
    On a terminal the output is coloured and long conversations open in a pager ($PAGER).

    \b
    Examples:
      postdesk show XER-83472-879
      postdesk show xer-834 --history
      postdesk show XER-83472-879 --json | jq '.messages[].from'
    """
    with app.reader() as conn:
        ticket = show_ticket(conn, mask)
        if history:
            ticket["history"] = ticket_history(conn, ticket["mask"])
    if as_json:
        print_json(ticket)
        return
    print_conversation(ticket)


@click.command()
@click.argument("mask")
@click.argument("number", type=click.IntRange(1))
@click.option("-o", "--output", "output", required=True, metavar="FILE",
              help="Where to save it; `-` writes the bytes to standard output.")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_obj
def attachment(app: App, mask: str, number: int, output: str, force: bool) -> None:
    """Save a ticket's attachment NUMBER (as `postdesk show` numbers them) to FILE.

    \b
    Examples:
      postdesk attachment XER-83472-879 1 -o invoice.pdf
      postdesk attachment XER-83472-879 2 -o - | file -
    """
    with app.reader() as conn:
        info, data = attachment_data(conn, mask, number)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(output)
    if target.exists() and not force:
        raise UsageError(f"{output} exists: give --force to overwrite it")
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror}") from None
    name = printable(info["filename"] or "(unnamed)")
    click.echo(f"saved {name} ({info['content_type']}, {len(data)} bytes) to {os.fspath(target)}", err=True)
