"""`postdesk wait`, `delete`, `restore` and `purge`: a ticket's status over time, from the terminal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from sqlalchemy.orm import Session

from core.errors import UsageError
from core.models import utcnow
from core.purge import Cutoffs, PurgeReport, count_purgeable, run_purge
from core.staff import find_worker
from core.ticket_states import delete_ticket, locked_ticket, restore_ticket, wait_until
from core.worker_commands import parse_due, parse_duration
from workers.app import App
from workers.output import print_json

WORKER_ENV = "POSTDESK_WORKER"
CLI_ACTOR = "postdesk cli"  # who the audit log names when no worker is given


def _as_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--as", "worker_email", envvar=WORKER_ENV, metavar="WORKER",
                        help=f"The worker doing it, for the audit log (default: ${WORKER_ENV}, else `{CLI_ACTOR}`)."
                        )(command)


def _actor(session: Session, worker_email: str | None) -> str:
    return find_worker(session, worker_email).email if worker_email else CLI_ACTOR


def _value(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _due(until: str | None, for_: str | None, now: datetime) -> datetime:
    if (until is None) == (for_ is None):
        raise UsageError("give either --until TIME or --for DURATION")
    if for_ is not None:
        return now + _value(parse_duration, for_)
    return _value(lambda text: parse_due(text, now), until or "")


@click.command()
@click.argument("mask")
@click.option("--until", metavar="TIME", help='Reopen at this time (UTC): "2026-12-01 09:00" or 2026-12-01.')
@click.option("--for", "for_", metavar="DURATION", help="Reopen after this long: 30m, 4h, 3d, 2w.")
@_as_option
@click.pass_obj
def wait(app: App, mask: str, until: str | None, for_: str | None, worker_email: str | None) -> None:
    """Set a ticket waiting; the daemon reopens it at the due time (a recipient's mail reopens it sooner).

    \b
    Examples:
      postdesk wait XER-83472-879 --for 3d
      postdesk wait XER-83472-879 --until "2026-12-01 09:00"
    """
    now = utcnow()
    due = _due(until, for_, now)
    with app.database().write() as session:
        ticket = locked_ticket(session, mask)
        wait_until(session, ticket, due, actor=_actor(session, worker_email), now=now)
    click.echo(f"{ticket.mask}: waiting until {due:%Y-%m-%d %H:%M} UTC")


@click.command()
@click.argument("mask")
@_as_option
@click.pass_obj
def delete(app: App, mask: str, worker_email: str | None) -> None:
    """Move a ticket to deleted; `postdesk restore` brings it back until a purge removes it.

    \b
    Example:
      postdesk delete XER-83472-879
    """
    _change(app, mask, worker_email, delete_ticket, "deleted")


@click.command()
@click.argument("mask")
@_as_option
@click.pass_obj
def restore(app: App, mask: str, worker_email: str | None) -> None:
    """Bring a deleted ticket back as open (possible until it is purged).

    \b
    Example:
      postdesk restore XER-83472-879
    """
    _change(app, mask, worker_email, restore_ticket, "restored, open")


def _change(app: App, mask: str, worker_email: str | None, change: Callable[..., None], done: str) -> None:
    """One status change in one transaction, the ticket locked meanwhile."""
    with app.database().write() as session:
        ticket = locked_ticket(session, mask)
        change(session, ticket, actor=_actor(session, worker_email), now=utcnow())
    click.echo(f"{ticket.mask}: {done}")


@click.command()
@click.option("--older-than", metavar="DURATION",
              help="Purge what was deleted or quarantined longer ago than this, e.g. 30d "
                   "(default: [scheduler] deleted_retention_days and quarantine_retention_days).")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@_as_option
@click.pass_obj
def purge(app: App, older_than: str | None, dry_run: bool, as_json: bool, worker_email: str | None) -> None:
    """Remove for good deleted tickets (with their messages and unshared attachments) and old quarantined mail.

    The daemon does this on the [scheduler] purge_cron schedule; this runs it now.

    \b
    Examples:
      postdesk purge --dry-run
      postdesk purge --older-than 7d
    """
    now = utcnow()
    cutoffs = (Cutoffs.older_than(_value(parse_duration, older_than), now) if older_than
               else Cutoffs.from_settings(app.settings.scheduler, now))
    db = app.database()
    if dry_run:
        with db.read() as session:
            report = count_purgeable(session, cutoffs)
    else:
        with db.read() as session:
            actor = _actor(session, worker_email)
        report = run_purge(db, cutoffs, actor=actor, clock=utcnow)
    _print_report(report, dry_run, as_json)


def _print_report(report: PurgeReport, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json({"dry_run": dry_run, **report.as_dict()})
        return
    click.echo(f"{'would purge' if dry_run else 'purged'}: {report.describe()}")
