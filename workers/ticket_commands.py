"""`postdesk wait`, `close`, `reopen`, `delete`, `restore` and `purge`: a ticket's status, from the terminal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from core.errors import UsageError
from core.models import utcnow
from core.purge import PurgeReport
from core.worker_commands import due_time, parse_duration
from workers.acting import MASKS, cli_actor, print_changes
from workers.app import App
from workers.options import as_worker_option
from workers.output import print_json


def _value(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _due(until: str | None, for_: str | None, now: datetime) -> datetime:
    due = due_time(for_, until, now) if (until is None) != (for_ is None) else None
    if due is None:
        raise UsageError("give either --until TIME or --for DURATION")
    return due


@click.command()
@MASKS
@click.option("--until", metavar="TIME", help='Reopen at this time (UTC): "2026-12-01 09:00" or 2026-12-01.')
@click.option("--for", "for_", metavar="DURATION", help="Reopen after this long: 30m, 4h, 3d, 2w.")
@as_worker_option
@click.pass_obj
def wait(app: App, masks: tuple[str, ...], until: str | None, for_: str | None, worker_email: str | None) -> None:
    """Set tickets waiting; the daemon reopens them at the due time (a recipient's mail reopens one sooner).

    \b
    Examples:
      postdesk wait XER-83472-879 --for 3d
      postdesk wait XER-83472-879 ABC-1 --until "2026-12-01 09:00"
    """
    due = _due(until, for_, utcnow())
    print_changes(app.desk().wait(masks, due, cli_actor(worker_email)))


@click.command()
@MASKS
@as_worker_option
@click.pass_obj
def close(app: App, masks: tuple[str, ...], worker_email: str | None) -> None:
    """Close tickets; recipients get the close notice where the group sends one (as `#close` by mail).

    A recipient's reply reopens a closed ticket.

    \b
    Examples:
      postdesk close XER-83472-879
      postdesk close XER-834 ABC-12 --as jane@corp.example
    """
    print_changes(app.desk().close(masks, cli_actor(worker_email)))


@click.command()
@MASKS
@as_worker_option
@click.pass_obj
def reopen(app: App, masks: tuple[str, ...], worker_email: str | None) -> None:
    """Open waiting or closed tickets again (a waiting ticket's due time is dropped); `restore` is for deleted ones.

    \b
    Examples:
      postdesk reopen XER-83472-879
      POSTDESK_WORKER=jane@corp.example postdesk reopen XER-834 ABC-12
    """
    print_changes(app.desk().reopen(masks, cli_actor(worker_email)))


@click.command()
@MASKS
@as_worker_option
@click.pass_obj
def delete(app: App, masks: tuple[str, ...], worker_email: str | None) -> None:
    """Move tickets to deleted; `postdesk restore` brings them back until a purge removes them.

    \b
    Examples:
      postdesk delete XER-83472-879
      postdesk delete XER-834 ABC-12 --as jane@corp.example
    """
    print_changes(app.desk().delete(masks, cli_actor(worker_email)))


@click.command()
@MASKS
@as_worker_option
@click.pass_obj
def restore(app: App, masks: tuple[str, ...], worker_email: str | None) -> None:
    """Bring deleted tickets back as open (possible until they are purged).

    \b
    Examples:
      postdesk restore XER-83472-879
      postdesk restore XER-834 ABC-12
    """
    print_changes(app.desk().restore(masks, cli_actor(worker_email)))


@click.command()
@click.option("--older-than", metavar="DURATION",
              help="Purge what was deleted, held as spam or quarantined longer ago than this, e.g. 30d "
                   "(default: [scheduler] deleted_retention_days, quarantine_retention_days and "
                   "[spam] retention_days).")
@click.option("--dry-run", is_flag=True, help="Count what would be purged; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@as_worker_option
@click.pass_obj
def purge(app: App, older_than: str | None, dry_run: bool, as_json: bool, worker_email: str | None) -> None:
    """Remove for good deleted tickets and unjudged held spam (with their messages and unshared attachments)
    and old quarantined mail.

    The daemon does this on the [scheduler] purge_cron schedule; this runs it now.

    \b
    Examples:
      postdesk purge --dry-run
      postdesk purge --older-than 7d
    """
    age = _value(parse_duration, older_than) if older_than else None
    report = app.desk().purge(cli_actor(worker_email), older_than=age, dry_run=dry_run)
    _print_report(report, dry_run, as_json)


def _print_report(report: PurgeReport, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json({"dry_run": dry_run, **report.as_dict()})
        return
    click.echo(f"{'would purge' if dry_run else 'purged'}: {report.describe()}")
