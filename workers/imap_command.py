"""`postdesk imap poll`: every [[imap]] account's new mail fetched and filed once, for cron instead of the daemon."""

from __future__ import annotations

import click

from core.errors import MailboxUnavailable, UsageError
from workers.app import App


@click.group()
def imap() -> None:
    """Mailboxes read over IMAP ([[imap]] in the settings).

    \b
    Example:
      postdesk imap poll
    """


@imap.command("poll")
@click.pass_context
def poll(ctx: click.Context) -> None:
    """Fetch each account's new mail once, file it, then move or flag it on the server.

    Mail is committed before the server is told anything, so a poll cut short loses nothing and
    imports nothing twice. An account that cannot be read is reported; the others still run.

    \b
    Example (crontab, where `postdesk serve` does not run):
      */5 * * * *  postdesk imap poll
    """
    from mailgate.imap_poller import ImapPoller  # the IMAP and mail pipeline modules load only for this command
    from mailgate.runner import SpoolRunner

    app: App = ctx.obj
    if not app.settings.imap:
        raise UsageError("no [[imap]] accounts in the settings")
    db = app.database()
    failed = 0
    for account in app.settings.imap:
        try:
            result = ImapPoller(db, account, max_message_size=app.settings.smtp.max_message_size).poll_once()
        except MailboxUnavailable as exc:
            click.echo(f"postdesk: {exc}", err=True)
            failed += 1
            continue
        too_large = f", {result.too_large} over the size limit left in the mailbox" if result.too_large else ""
        click.echo(f"{account.name}: {result.imported} imported, {result.finished} moved or flagged{too_large}")
    SpoolRunner(db, app.settings).drain()
    if failed:
        ctx.exit(1)
