"""`postdesk outbox`: the mail the helpdesk has queued, is sending, sent, or gave up on."""

from __future__ import annotations

import click

from core.models import OutboxState
from core.outbox_queries import PENDING_STATES, list_outbox
from workers.app import App
from workers.output import chosen_values, print_json, print_table

STATE_CHOICES = [s.value for s in OutboxState] + ["all"]
COLUMNS = ["id", "state", "purpose", "ticket", "recipients", "attempts", "next_attempt", "last_error", "created",
           "sent"]


@click.command()
@click.option("--state", "states", multiple=True, type=click.Choice(STATE_CHOICES),
              help="Only mail in this state (repeatable; `all` for every state). Default: queued, sending, failed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON objects with stable field names.")
@click.pass_obj
def outbox(app: App, states: tuple[str, ...], as_json: bool) -> None:
    """List outbound mail, oldest first; by default what is not sent yet.

    \b
    Examples:
      postdesk outbox
      postdesk outbox --state failed --json
    """
    chosen = chosen_values(states, OutboxState, PENDING_STATES)
    with app.database().read() as session:
        rows = list_outbox(session, chosen)
    if as_json:
        print_json(rows)
        return
    print_table(COLUMNS, [[_cell(row[column]) for column in COLUMNS] for row in rows])


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)
