"""`postdesk worker …` and `postdesk group …`: who answers the mail and where it arrives."""

from __future__ import annotations

from dataclasses import asdict

import click

from core.staff import (add_group, add_worker, list_groups, list_workers, remove_group, remove_worker,
                        set_auto_close_days)
from core.errors import UsageError
from workers.app import App
from workers.output import print_json, print_table


@click.group()
def worker() -> None:
    """Helpdesk workers (their addresses are never shown to customers)."""


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
    with app.database().write() as session:
        added = add_worker(session, email, name, list(groups))
    click.echo(f"added worker {added.email} ({', '.join(added.groups) or 'no group'})")


@worker.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def worker_list(app: App, as_json: bool) -> None:
    """List workers and their groups."""
    with app.database().read() as session:
        rows = list_workers(session)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table(["email", "name", "groups"], [[r.email, r.name, ", ".join(r.groups)] for r in rows])


@worker.command("remove")
@click.argument("email")
@click.pass_obj
def worker_remove(app: App, email: str) -> None:
    """Remove a worker (tickets they own become unowned)."""
    with app.database().write() as session:
        remove_worker(session, email)
    click.echo(f"removed worker {email}")


@click.group()
def group() -> None:
    """Groups: each has an address, an inbox, and members who are notified."""


@group.command("add")
@click.argument("name")
@click.option("--address", required=True, help="The address customers write to, e.g. support@example.com.")
@click.option("--auto-reply/--no-auto-reply", default=True, show_default=True,
              help="Acknowledge a new ticket to its sender.")
@click.option("--close-notice/--no-close-notice", default=False, show_default=True,
              help="Mail recipients a transcript when a ticket closes.")
@click.option("--auto-close-days", type=int, metavar="N", help="Close tickets waiting untouched longer than N days.")
@click.pass_obj
def group_add(app: App, name: str, address: str, auto_reply: bool, close_notice: bool,
              auto_close_days: int | None) -> None:
    """Add a group.

    \b
    Example:
      postdesk group add Billing --address billing@example.com --no-auto-reply --auto-close-days 14
    """
    with app.database().write() as session:
        added = add_group(session, name, address, auto_reply, close_notice)
        if auto_close_days is not None:
            set_auto_close_days(session, added.name, auto_close_days)
    click.echo(f"added group {added.name} <{added.address}>")


@group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def group_list(app: App, as_json: bool) -> None:
    """List groups with their addresses, options and members."""
    with app.database().read() as session:
        rows = list_groups(session)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table(["name", "address", "auto_reply", "close_notice", "auto_close", "members"],
                [[r.name, r.address, "yes" if r.auto_reply else "no", "yes" if r.close_notice else "no",
                  f"{r.auto_close_days}d" if r.auto_close_days else "never", ", ".join(r.members)] for r in rows])


@group.command("edit")
@click.argument("name")
@click.option("--auto-close-days", type=int, metavar="N", help="Close tickets waiting untouched longer than N days.")
@click.option("--no-auto-close", is_flag=True, help="Never close the group's waiting tickets by time.")
@click.pass_obj
def group_edit(app: App, name: str, auto_close_days: int | None, no_auto_close: bool) -> None:
    """Change a group's auto-close setting (a waiting ticket with a due time is reopened then, never closed).

    \b
    Examples:
      postdesk group edit Support --auto-close-days 14
      postdesk group edit Support --no-auto-close
    """
    if (auto_close_days is None) == (not no_auto_close):
        raise UsageError("give either --auto-close-days N or --no-auto-close")
    with app.database().write() as session:
        changed = set_auto_close_days(session, name, None if no_auto_close else auto_close_days)
    click.echo(f"group {changed.name}: " + (f"auto-close after {changed.auto_close_days} days"
                                            if changed.auto_close_days else "no auto-close"))


@group.command("remove")
@click.argument("name")
@click.pass_obj
def group_remove(app: App, name: str) -> None:
    """Remove a group that has no tickets."""
    with app.database().write() as session:
        remove_group(session, name)
    click.echo(f"removed group {name}")
