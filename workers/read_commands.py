"""`postdesk tickets` and `postdesk show`: the read side of the worker's desk."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from core.models import Status
from core.queries import DEFAULT_STATUSES, list_tickets, show_ticket
from workers.app import App
from workers.output import chosen_values, print_json, print_table

STATUS_CHOICES = [s.value for s in Status] + ["all"]


@click.command()
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUS_CHOICES),
              help="Only tickets in this status (repeatable; `all` for every status). Default: open and waiting.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON objects with stable field names.")
@click.pass_obj
def tickets(app: App, statuses: tuple[str, ...], as_json: bool) -> None:
    """List tickets, most recent activity first.

    \b
    Examples:
      postdesk tickets
      postdesk tickets --status closed --json
    """
    chosen = chosen_values(statuses, Status, DEFAULT_STATUSES)
    with app.database().read() as session:
        rows = list_tickets(session, chosen)
    if as_json:
        print_json(rows)
        return
    print_table(["mask", "subject", "status", "priority", "messages", "created", "updated"],
                [[row["mask"], row["subject"], row["status"], row["priority"], str(row["message_count"]),
                  _minute(row["created"]), _minute(row["updated"])] for row in rows])


def _minute(iso: str) -> str:
    return iso[:16].replace("T", " ")


@click.command()
@click.argument("mask")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the ticket and its messages.")
@click.pass_obj
def show(app: App, mask: str, as_json: bool) -> None:
    """Print a ticket's fields and its conversation.

    \b
    Example:
      postdesk show XER-83472-879
    """
    with app.database().read() as session:
        ticket = show_ticket(session, mask)
    if as_json:
        print_json(ticket)
        return
    _print_ticket(ticket)


def spam_summary(ticket: dict[str, Any]) -> str:
    """`0.31% (training: not_spam) from: lunch 0.02, meeting 0.05`: the score as Cerb shows it."""
    if ticket["spam_score"] is None:
        return "not scored"
    words = ", ".join(f"{w['word']} {w['probability']:.2f}" for w in ticket["interesting_words"][:15])
    return (f"{ticket['spam_score']:.2%} (training: {ticket['spam_training']})"
            + (f" from: {words}" if words else " (no evidence: the filter was untrained or knew no word)"))


def _print_ticket(ticket: dict[str, Any]) -> None:
    console = Console()
    console.print(f"[bold]{ticket['mask']}[/bold]  {ticket['subject']}", markup=True, highlight=False)
    for key in ("status", "priority", "group", "bucket", "owner", "organization", "created", "updated",
                "last_action", "first_wrote", "last_wrote"):
        console.print(f"  {key:<13} {ticket[key] if ticket[key] is not None else '-'}", highlight=False)
    console.print(f"  {'recipients':<13} {', '.join(ticket['recipients']) or '-'}", highlight=False)
    console.print(f"  {'spam':<13} {spam_summary(ticket)}", highlight=False)
    for number, message in enumerate(ticket["messages"], 1):
        flag = "  [unverified sender]" if message["unverified_sender"] else ""
        if message["kind"] != "inbound":
            flag += f"  [{message['kind']}]"
        console.rule(f"#{number} {message['from']}  {message['date'] or message['received']}{flag}")
        console.print(message["text"], markup=False, highlight=False)
        for attachment in message["attachments"]:
            console.print(f"  attachment: {attachment['filename'] or '(unnamed)'} "
                          f"({attachment['content_type']}, {attachment['size']} bytes)", highlight=False)
