"""`postdesk bucket …`: the folders of a group's tickets (every group has an Inbox, where new tickets land)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from workers.app import App
from workers.output import print_json, print_table


def _group_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--group", "group_name", metavar="G",
                        help="The group the bucket belongs to (default: the settings' default group).")(command)


@click.group()
def bucket() -> None:
    """Buckets: folders within a group (`postdesk move --bucket` files tickets there).

    \b
    Examples:
      postdesk bucket add Refunds --group Billing
      postdesk bucket list --json
      postdesk bucket edit Refunds --group Billing --name "Refunds 2026"
      postdesk bucket remove Refunds --group Billing
    """


@bucket.command("add")
@click.argument("name")
@_group_option
@click.pass_obj
def bucket_add(app: App, name: str, group_name: str | None) -> None:
    """Add a bucket to a group.

    \b
    Examples:
      postdesk bucket add Later
      postdesk bucket add Refunds --group Billing
    """
    added = app.desk().add_bucket(name, group_name)
    click.echo(f"added bucket {added.group}/{added.name}")


@bucket.command("list")
@click.option("--group", "group_name", metavar="G", help="Only this group's buckets (default: every group's).")
@click.option("--json", "as_json", is_flag=True, help='Print JSON: [{"group", "name", "tickets"}].')
@click.pass_obj
def bucket_list(app: App, group_name: str | None, as_json: bool) -> None:
    """List buckets by group, with how many tickets each holds.

    \b
    Examples:
      postdesk bucket list
      postdesk bucket list --group Billing --json
    """
    rows = app.desk().buckets(group_name)
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table(["group", "bucket", "tickets"], [[r.group, r.name, str(r.tickets)] for r in rows])


@bucket.command("edit")
@click.argument("name")
@_group_option
@click.option("--name", "new_name", required=True, help="The bucket's new name.")
@click.pass_obj
def bucket_edit(app: App, name: str, group_name: str | None, new_name: str) -> None:
    """Rename a bucket (its tickets stay in it; the Inbox keeps its name).

    \b
    Example:
      postdesk bucket edit Later --name "Next week"
    """
    renamed = app.desk().rename_bucket(name, new_name, group_name)
    click.echo(f"bucket {name} is now {renamed.group}/{renamed.name}")


@bucket.command("remove")
@click.argument("name")
@_group_option
@click.pass_obj
def bucket_remove(app: App, name: str, group_name: str | None) -> None:
    """Remove an empty bucket (one that holds tickets is refused: move them first).

    \b
    Example:
      postdesk bucket remove Refunds --group Billing
    """
    desk = app.desk()
    group = desk.group_or_default(group_name)
    desk.remove_bucket(name, group)
    click.echo(f"removed bucket {group}/{name}")
