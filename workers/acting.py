"""The terminal's side of acting on tickets: who the user is, and one line per ticket a command changed.

The commands themselves are core.desk.Helpdesk's; this only names the acting worker as the CLI
knows them (`--as` or $POSTDESK_WORKER) and prints the answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from core.desk import CLI_ACTOR, Actor, TicketChanged
from workers.options import WORKER_ENV

MASKS = click.argument("masks", nargs=-1, required=True, metavar="MASK...")  # whole masks or their first characters


def cli_actor(worker_email: str | None) -> Actor:
    """The terminal user: the worker given, else `postdesk cli` in the history."""
    return Actor(worker_email or None, CLI_ACTOR, f"--as WORKER or set {WORKER_ENV}")


def print_changes(changes: Sequence[TicketChanged]) -> None:
    """`MASK: what happened`, a line per ticket, printed after the transaction committed."""
    for change in changes:
        click.echo(f"{change.mask}: {change.said}")


def need_worker(worker_email: str | None, command: str) -> str:
    """For commands that write as a worker (reply, comment, new): a missing worker is a usage error."""
    if not worker_email:
        raise click.UsageError(f"{command} writes as a worker: give --as WORKER or set {WORKER_ENV}")
    return worker_email
