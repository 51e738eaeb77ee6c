"""A worker acting on tickets from the terminal: who acts, on which tickets, in one transaction, one line each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import click
from sqlalchemy.orm import Session

from core.errors import UsageError
from core.models import Ticket, Worker, utcnow
from core.notify import Outbound
from core.staff import find_worker
from core.lifecycle import refuse_deleted
from core.ticket_states import locked_tickets
from workers.app import App
from workers.options import WORKER_ENV

CLI_ACTOR = "postdesk cli"  # who the audit log names when no worker is given
MASKS = click.argument("masks", nargs=-1, required=True, metavar="MASK...")  # whole masks or their first characters


@dataclass(frozen=True)
class Acting:
    """What a change to one ticket needs to know: the transaction, who acts, the time, how to write mail."""

    session: Session
    worker: Worker | None
    now: datetime
    outbound: Outbound

    @property
    def actor(self) -> str:
        """The name the audit log gives: the worker's address, else `postdesk cli`."""
        return self.worker.email if self.worker else CLI_ACTOR

    def required_worker(self, need: str) -> Worker:
        """The acting worker, for what only a worker can do (`--owner me`)."""
        if self.worker is None:
            raise UsageError(f"{need} needs to know who you are: give --as WORKER or set {WORKER_ENV}")
        return self.worker


Change = Callable[[Acting, Ticket], str]  # changes one ticket; returns what the line after its mask says


def act_on_tickets(app: App, masks: Sequence[str], worker_email: str | None, change: Change, *,
                   deleted_ok: bool = False) -> None:
    """Resolve every mask, then change every ticket, all in one transaction; print a line per ticket after commit.

    An unknown or ambiguous mask, or a ticket the change refuses, rolls back the whole command. A
    deleted ticket is refused unless the command is about deletion (`deleted_ok`: delete, restore, spam).
    """
    with app.database().write() as session:
        acting = Acting(session, find_worker(session, worker_email) if worker_email else None, utcnow(),
                        Outbound.from_settings(app.settings))
        lines = [f"{ticket.mask}: {_changed(acting, ticket, change, deleted_ok)}"
                 for ticket in locked_tickets(session, masks)]
    for line in lines:
        click.echo(line)


def _changed(acting: Acting, ticket: Ticket, change: Change, deleted_ok: bool) -> str:
    if not deleted_ok:
        refuse_deleted(ticket)
    return change(acting, ticket)


def need_worker(worker_email: str | None, command: str) -> str:
    """For commands that write as a worker (reply, comment, new): a missing worker is a usage error."""
    if not worker_email:
        raise click.UsageError(f"{command} writes as a worker: give --as WORKER or set {WORKER_ENV}")
    return worker_email


def said(changed: bool, done: str, already: str) -> str:
    """The line for a change that may have been made before: `closed`, or `closed already`."""
    return done if changed else already
