"""`postdesk worker …` and `postdesk group …`: who answers the mail and where it arrives."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from core.errors import UsageError
from core.staff import GroupView
from workers.app import App
from workers.output import print_json, print_table


@click.group()
def worker() -> None:
    """Helpdesk workers (their addresses are never shown to customers).

    \b
    Examples:
      postdesk worker add jane@corp.example --name "Jane Doe" --group Support
      postdesk worker edit jane@corp.example --join Billing
      postdesk worker list --json
      postdesk worker passwd jane@corp.example
    """


@worker.command("add")
@click.argument("email")
@click.option("--name", required=True, help="Display name customers see on replies.")
@click.option("--group", "groups", multiple=True, help="Group to join (repeatable).")
@click.pass_obj
def worker_add(app: App, email: str, name: str, groups: tuple[str, ...]) -> None:
    """Add a worker.

    \b
    Example:
      postdesk worker add jane@corp.example --name "Jane Doe" --group Support
    """
    added = app.desk().add_worker(email, name, groups)
    click.echo(f"added worker {added.email} ({', '.join(added.groups) or 'no group'})")


@worker.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def worker_list(app: App, as_json: bool) -> None:
    """List workers and their groups.

    \b
    Examples:
      postdesk worker list
      postdesk worker list --json
    """
    rows = app.desk().workers()
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table(["email", "name", "groups"], [[r.email, r.name, ", ".join(r.groups)] for r in rows])


@worker.command("edit")
@click.argument("email")
@click.option("--name", help="A new display name.")
@click.option("--join", "join", multiple=True, metavar="GROUP", help="Join this group (repeatable).")
@click.option("--leave", "leave", multiple=True, metavar="GROUP", help="Leave this group (repeatable).")
@click.pass_obj
def worker_edit(app: App, email: str, name: str | None, join: tuple[str, ...], leave: tuple[str, ...]) -> None:
    """Rename a worker, or change the groups they belong to (and so whose mail they get).

    \b
    Examples:
      postdesk worker edit jane@corp.example --name "Jane Smith"
      postdesk worker edit jane@corp.example --join Billing --leave Support
    """
    if name is None and not join and not leave:
        raise UsageError("nothing to change: give --name, --join GROUP or --leave GROUP")
    changed = app.desk().edit_worker(email, name=name, join=join, leave=leave)
    click.echo(f"worker {changed.email}: {changed.name} ({', '.join(changed.groups) or 'no group'})")


@worker.command("remove")
@click.argument("email")
@click.pass_obj
def worker_remove(app: App, email: str) -> None:
    """Remove a worker (tickets they own become unowned).

    \b
    Example:
      postdesk worker remove jane@corp.example
    """
    app.desk().remove_worker(email)
    click.echo(f"removed worker {email}")


@worker.command("passwd")
@click.argument("email")
@click.pass_obj
def worker_passwd(app: App, email: str) -> None:
    """Set a worker's password for the web desk, from a prompt (asked twice) or from stdin; their sessions end.

    \b
    Examples:
      postdesk worker passwd jane@corp.example
      printf '%s\\n' "$PASSWORD" | postdesk worker passwd jane@corp.example
    """
    if sys.stdin.isatty():
        password = str(click.prompt("New password", hide_input=True, confirmation_prompt=True))
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    ended = app.desk().set_password(email, password)
    click.echo(f"password set for {email}" + (f"; {ended} session{'s' if ended != 1 else ''} ended" if ended else ""))


@worker.command("sessions")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="End every session of the worker now.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def worker_sessions(app: App, email: str, revoke: bool, as_json: bool) -> None:
    """List a worker's web desk sessions, or end them all (a lost laptop).

    \b
    Examples:
      postdesk worker sessions jane@corp.example
      postdesk worker sessions jane@corp.example --revoke
    """
    if revoke:
        ended = app.desk().revoke_sessions(email)
        click.echo(f"{email}: {ended} session{'s' if ended != 1 else ''} ended")
        return
    rows = [{"signed_in": s.created_at.isoformat(), "last_seen": s.last_seen_at.isoformat()}
            for s in app.desk().sessions(email)]
    if as_json:
        print_json(rows)
        return
    print_table(["signed in", "last seen"], [[r["signed_in"][:19], r["last_seen"][:19]] for r in rows])


@worker.command("token")
@click.argument("email")
@click.option("--name", default="", help="What the token is for (a script's name).")
@click.option("--revoke", is_flag=True, help="Revoke every API token of the worker instead.")
@click.pass_obj
def worker_token(app: App, email: str, name: str, revoke: bool) -> None:
    """Make an API token for scripts (/api/v1), shown this once; or revoke the worker's tokens.

    \b
    Examples:
      postdesk worker token jane@corp.example --name nightly-report
      postdesk worker token jane@corp.example --revoke
    """
    if revoke:
        revoked = app.desk().revoke_api_tokens(email)
        click.echo(f"{email}: {revoked} token{'s' if revoked != 1 else ''} revoked")
        return
    click.echo(app.desk().new_api_token(email, name))


TRANSCRIPTS_HELP = ("On closing a ticket, keep its conversation encrypted and mail its link instead of the text "
                    "(the close notice is sent then, whatever --close-notice says).")
TRANSCRIPT_ADDRESS_HELP = "Also mail each transcript's link here (a log of what the group closed)."


@click.group()
def group() -> None:
    """Groups: each has an address, an inbox, and members who are notified.

    \b
    Examples:
      postdesk group add Billing --address billing@example.com
      postdesk group edit Billing --close-notice --auto-close-days 14
      postdesk group edit Billing --transcripts --transcript-address closed-log@corp.example
      postdesk group list --json
    """


@group.command("add")
@click.argument("name")
@click.option("--address", required=True, help="The address customers write to, e.g. support@example.com.")
@click.option("--auto-reply/--no-auto-reply", default=True, show_default=True,
              help="Acknowledge a new ticket to its sender.")
@click.option("--close-notice/--no-close-notice", default=False, show_default=True,
              help="Mail recipients a transcript when a ticket closes.")
@click.option("--auto-close-days", type=int, metavar="N", help="Close tickets waiting untouched longer than N days.")
@click.option("--language", default="", metavar="CODE",
              help="Write the group's mails in this language (fr, de…) where templates exist; default English.")
@click.option("--transcripts/--no-transcripts", default=False, show_default=True, help=TRANSCRIPTS_HELP)
@click.option("--transcript-address", default="", metavar="ADDRESS", help=TRANSCRIPT_ADDRESS_HELP)
@click.pass_obj
def group_add(app: App, name: str, address: str, auto_reply: bool, close_notice: bool,
              auto_close_days: int | None, language: str, transcripts: bool, transcript_address: str) -> None:
    """Add a group.

    \b
    Examples:
      postdesk group add Billing --address billing@example.com --no-auto-reply --auto-close-days 14
      postdesk group add Legal --address legal@example.com --transcripts --transcript-address log@corp.example
    """
    added = app.desk().add_group(name, address, auto_reply=auto_reply, close_notice=close_notice,
                                 auto_close_days=auto_close_days, language=language, transcripts=transcripts,
                                 transcript_address=transcript_address)
    click.echo(f"added group {added.name} <{added.address}>")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def group_list(app: App, as_json: bool) -> None:
    """List groups with their addresses, options and members.

    \b
    Examples:
      postdesk group list
      postdesk group list --json
    """
    rows = app.desk().groups()
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table(["name", "address", "auto_reply", "close_notice", "auto_close", "language", "transcripts", "members"],
                [[r.name, r.address, "yes" if r.auto_reply else "no", "yes" if r.close_notice else "no",
                  f"{r.auto_close_days}d" if r.auto_close_days else "never", r.language or "en",
                  _transcripts_cell(r), ", ".join(r.members)] for r in rows])


def _transcripts_cell(group: GroupView) -> str:
    """`no`, `yes`, or `yes, copy to log@corp.example`."""
    if not group.transcripts:
        return "no"
    return f"yes, copy to {group.transcript_address}" if group.transcript_address else "yes"


@group.command("edit")
@click.argument("name")
@click.option("--address", help="A new address customers write to (mail to the old one is no longer the group's).")
@click.option("--auto-reply/--no-auto-reply", default=None, help="Acknowledge a new ticket to its sender, or not.")
@click.option("--close-notice/--no-close-notice", default=None,
              help="Mail recipients a transcript when a ticket closes, or not.")
@click.option("--auto-close-days", type=int, metavar="N", help="Close tickets waiting untouched longer than N days.")
@click.option("--no-auto-close", is_flag=True, help="Never close the group's waiting tickets by time.")
@click.option("--language", metavar="CODE", help="Write the group's mails in this language (fr, de…; en: English).")
@click.option("--transcripts/--no-transcripts", default=None, help=TRANSCRIPTS_HELP)
@click.option("--transcript-address", metavar="ADDRESS", help=TRANSCRIPT_ADDRESS_HELP + " \"\" drops it.")
@click.pass_obj
def group_edit(app: App, name: str, address: str | None, auto_reply: bool | None, close_notice: bool | None,
               auto_close_days: int | None, no_auto_close: bool, language: str | None, transcripts: bool | None,
               transcript_address: str | None) -> None:
    """Change a group's address, acknowledgements, close notices, auto-close or transcripts; what is not given
    stays.

    A waiting ticket with a due time is reopened then, never auto-closed.

    \b
    Examples:
      postdesk group edit Support --auto-close-days 14
      postdesk group edit Support --no-auto-close
      postdesk group edit Billing --address invoices@example.com --no-auto-reply --close-notice
      postdesk group edit Support --language fr
      postdesk group edit Support --transcripts --transcript-address closed-log@corp.example
    """
    if auto_close_days is not None and no_auto_close:
        raise UsageError("give either --auto-close-days N or --no-auto-close")
    given = {key for key, value in (("address", address), ("auto_reply", auto_reply), ("close_notice", close_notice),
                                    ("auto_close", True if no_auto_close else auto_close_days),
                                    ("language", language), ("transcripts", transcripts),
                                    ("transcript_address", transcript_address)) if value is not None}
    if not given:
        raise UsageError("nothing to change: give --address, --[no-]auto-reply, --[no-]close-notice, "
                         "--auto-close-days N, --no-auto-close, --language CODE, --[no-]transcripts "
                         "or --transcript-address ADDRESS")
    changed = app.desk().edit_group(name, address=address, auto_reply=auto_reply, close_notice=close_notice,
                                    language=language, auto_close_days=auto_close_days,
                                    no_auto_close=no_auto_close, transcripts=transcripts,
                                    transcript_address=transcript_address)
    click.echo(_group_line(changed, given))


def _group_line(group: GroupView, given: set[str]) -> str:
    """`group Support: close notice on, auto-close after 3 days`: what the edit set."""
    parts = {"address": f"address {group.address}",
             "auto_reply": f"auto-reply {'on' if group.auto_reply else 'off'}",
             "close_notice": f"close notice {'on' if group.close_notice else 'off'}",
             "auto_close": f"auto-close after {group.auto_close_days} days" if group.auto_close_days
             else "no auto-close",
             "language": f"language {group.language or 'en'}",
             "transcripts": f"transcripts {'on' if group.transcripts else 'off'}",
             "transcript_address": f"transcript copies to {group.transcript_address or 'nobody'}"}
    return f"group {group.name}: " + ", ".join(text for key, text in parts.items() if key in given)


@group.command("remove")
@click.argument("name")
@click.pass_obj
def group_remove(app: App, name: str) -> None:
    """Remove a group that has no tickets.

    \b
    Example:
      postdesk group remove Billing
    """
    app.desk().remove_group(name)
    click.echo(f"removed group {name}")
