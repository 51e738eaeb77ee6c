"""`postdesk import PATH`: bring an mbox, Maildir or folder of messages in, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import click
from rich.progress import Progress

from mailgate.importer import import_messages
from mailgate.mail_sources import count_messages, read_messages
from workers.app import App


@click.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.pass_obj
def import_mail(app: App, path: Path) -> None:
    """Import every message of an mbox file, a Maildir, or a folder of message files.

    \b
    Examples:
      postdesk import ~/mail/support.mbox
      postdesk import ~/Maildir
    """
    db = app.database()
    total = count_messages(path)
    with Progress(transient=False) as progress:
        task = progress.add_task(f"importing {path.name}", total=total)
        report = import_messages(db, app.settings, read_messages(path),
                                 lambda n: progress.advance(task, n))
    stats = report.stats
    assert stats is not None
    click.echo(f"read {report.read}: filed {stats.filed}, duplicates {stats.duplicates}, "
               f"quarantined {stats.quarantined}, too large {report.too_large}, "
               f"left for retry {max(0, report.read - report.too_large - stats.filed - stats.duplicates - stats.quarantined)}")
