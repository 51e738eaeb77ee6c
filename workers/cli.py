"""The `postdesk` command: turns each expected error into one readable line and exit status 1."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from core.errors import MessageRejected, PostdeskError, UsageError
from workers.app import App

# Each command's module is imported only when that command runs: `postdesk tickets` must not pay
# for the ORM, the mail pipeline or the IMAP client. name -> "module:function".
LAZY_COMMANDS = {
    "tickets": "workers.read_commands:tickets",
    "search": "workers.read_commands:search",
    "show": "workers.read_commands:show",
    "attachment": "workers.read_commands:attachment",
    "import": "workers.import_command:import_mail",
    "imap": "workers.imap_command:imap",
    "worker": "workers.staff_commands:worker",
    "group": "workers.staff_commands:group",
    "reply": "workers.reply_commands:reply",
    "new": "workers.reply_commands:new",
    "outbox": "workers.outbox_command:outbox",
    "spam": "workers.spam_commands:spam",
    "notspam": "workers.spam_commands:notspam",
    "wait": "workers.ticket_commands:wait",
    "delete": "workers.ticket_commands:delete",
    "restore": "workers.ticket_commands:restore",
    "purge": "workers.ticket_commands:purge",
    "close": "workers.ticket_commands:close",
    "reopen": "workers.ticket_commands:reopen",
    "comment": "workers.reply_commands:comment",
    "assign": "workers.routing_commands:assign",
    "move": "workers.routing_commands:move",
    "priority": "workers.routing_commands:priority",
    "bucket": "workers.bucket_commands:bucket",
    "org": "workers.org_commands:org",
}


class PostdeskGroup(click.Group):
    """A click group whose commands report PostdeskError as `postdesk: <message>` and exit 1.

    Commands named in LAZY_COMMANDS are loaded on first use.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module, attribute = LAZY_COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PostdeskError as exc:
            click.echo(f"postdesk: {exc}", err=True)
            ctx.exit(1)
        except SQLAlchemyError as exc:
            click.echo(f"postdesk: database error: {getattr(exc, 'orig', None) or exc}", err=True)
            ctx.exit(1)


@click.group(cls=PostdeskGroup)
@click.option("--config", "config", type=click.Path(dir_okay=False), envvar="POSTDESK_CONFIG",
              help="Settings file (default: $POSTDESK_CONFIG, else the shipped settings.toml).")
@click.pass_context
def main(ctx: click.Context, config: str | None) -> None:
    """postdesk: an email-driven helpdesk.

    \b
    Examples:
      postdesk serve                      run the SMTP gateway
      postdesk tickets --status waiting   list waiting tickets
      postdesk show XER-83472-879         read one conversation
    """
    app = App(config)
    ctx.obj = app
    ctx.call_on_close(app.close)


@main.command()
@click.pass_obj
def serve(app: App) -> None:
    """Run the daemon: SMTP gateway and spool runner, until SIGTERM.

    Creates the database schema when the database is empty.

    \b
    Example:
      postdesk --config /etc/postdesk/settings.toml serve
    """
    from mailgate.daemon import serve as run_daemon

    run_daemon(app.settings)


@main.command()
@click.pass_obj
def web(app: App) -> None:
    """Serve the web desk alone on [web] listen, for another process or host on the same database.

    `postdesk serve` serves it too when [web] listen is set.

    \b
    Example:
      postdesk --config /etc/postdesk/settings.toml web
    """
    from web.serve import serve_alone

    if not app.settings.web.listen:
        raise UsageError("[web] listen is empty: set it to HOST:PORT to serve the desk")
    serve_alone(app.settings, app.database())


@main.command("deliver")
@click.option("--from", "mail_from", default=None,
              help='Envelope sender, as the MTA passes it; "" or "<>" for a bounce. Without it: the Return-Path.')
@click.option("--to", "rcpt_tos", multiple=True, help="Envelope recipient (repeatable).")
@click.pass_obj
def deliver_command(app: App, mail_from: str | None, rcpt_tos: tuple[str, ...]) -> None:
    """Take one message on stdin (for an MTA pipe); exit 0 once stored, 75 on a temporary failure.

    Only a message refused for good (too large) exits 1, which makes the MTA bounce it; every other
    failure (database down or locked, disk full, settings being fixed) is 75: the MTA keeps the
    message and tries again.

    \b
    Example (Postfix master.cf / aliases):
      support: "|postdesk deliver --from ${sender} --to ${recipient}"
    """
    from mailgate.deliver import EX_TEMPFAIL, deliver, one_line_error, pipe_envelope  # only commands that file mail

    try:
        raw = sys.stdin.buffer.read()
        deliver(app.database(), app.settings, raw, pipe_envelope(mail_from, rcpt_tos))
    except MessageRejected:
        raise  # refused for good: `postdesk: <why>`, exit 1
    except Exception as exc:  # anything else may pass: a bounce would lose the customer's mail
        click.echo(f"postdesk: temporary failure, message not stored: {one_line_error(exc)}", err=True)
        sys.exit(EX_TEMPFAIL)


@main.group()
def db() -> None:
    """Database schema.

    \b
    Example:
      postdesk db upgrade
    """


@db.command("upgrade")
@click.pass_obj
def db_upgrade(app: App) -> None:
    """Apply pending schema migrations.

    \b
    Example:
      postdesk db upgrade
    """
    from core.schema import upgrade

    before, after = upgrade(app.database(create=False))
    click.echo(f"schema: {before or 'empty'} -> {after}")


@main.group()
def quarantine() -> None:
    """Mail that could not be filed, kept raw with the reason.

    \b
    Example:
      postdesk quarantine list --json
    """


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def quarantine_list(app: App, as_json: bool) -> None:
    """List quarantined mail, newest first.

    \b
    Examples:
      postdesk quarantine list
      postdesk quarantine list --json
    """
    from workers.quarantine_view import print_quarantine

    print_quarantine(app.database(), as_json)
