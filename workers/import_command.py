"""`postdesk import PATH`: bring an mbox, Maildir or folder of messages in, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from workers.app import App

if TYPE_CHECKING:
    from mailgate.importer import ImportReport


@click.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--notify", is_flag=True,
              help="Acknowledge and notify as if the mail came now (default: file it silently).")
@click.pass_obj
def import_mail(app: App, path: Path, notify: bool) -> None:
    """Import every message of an mbox file, a Maildir, or a folder of message files.

    An import is a migration: mail is filed silently, without acknowledgements, worker
    notifications or relayed replies, unless --notify is given.

    Mail already stored (same Message-ID) is not stored twice, so an import can be repeated.
    Mail that cannot be read goes to the quarantine (`postdesk quarantine list`); mail larger
    than [smtp] max_message_size is listed on stderr and not imported.

    \b
    Examples:
      postdesk import ~/mail/support.mbox
      postdesk import ~/Maildir
      postdesk import --notify ~/mail/unanswered.mbox
    """
    db = app.database()
    from rich.console import Console
    from rich.progress import Progress

    from mailgate.importer import import_messages  # the mail pipeline loads only when mail is filed
    from mailgate.mail_sources import count_messages, read_messages

    total = count_messages(path)
    with Progress(console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(f"importing {path.name}", total=total)
        report = import_messages(db, app.settings, read_messages(path),
                                 lambda n: progress.advance(task, n), notify=notify)
    _print_report(report, app.settings.smtp.max_message_size)


def _print_report(report: ImportReport, limit: int) -> None:
    for origin, size in report.too_large:
        click.echo(f"postdesk: not imported, {size} bytes is over [smtp] max_message_size ({limit}): {origin}",
                   err=True)
    stats = report.stats
    click.echo(f"read {report.read}: filed {stats.filed}, duplicates {stats.duplicates}, "
               f"quarantined {stats.quarantined}, too large {len(report.too_large)}, "
               f"left for retry {report.left_for_retry}")
