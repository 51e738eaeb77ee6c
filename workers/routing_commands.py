"""`postdesk assign`, `move` and `priority`: who has a ticket, where it sits, how urgent it is."""

from __future__ import annotations

import click

from core.models import Priority
from workers.acting import MASKS, cli_actor, print_changes
from workers.app import App
from workers.options import as_worker_option



@click.command()
@MASKS
@click.option("--owner", required=True, metavar="WORKER|me|none",
              help="The worker who takes the tickets: an address, `me` (the --as worker), or `none`.")
@as_worker_option
@click.pass_obj
def assign(app: App, masks: tuple[str, ...], owner: str, worker_email: str | None) -> None:
    """Give tickets to a worker: a recipient's mail then goes to the owner alone, not the whole group.

    \b
    Examples:
      postdesk assign XER-83472-879 --owner bob@corp.example
      postdesk assign XER-834 ABC-12 --owner me --as jane@corp.example
      postdesk assign XER-834 --owner none
    """
    print_changes(app.desk().assign(masks, owner, cli_actor(worker_email)))


@click.command()
@MASKS
@click.option("--group", "group_name", metavar="G", help="The group to move to (its Inbox unless --bucket says).")
@click.option("--bucket", "bucket_name", metavar="B",
              help="The bucket to move to: of --group, or else of each ticket's own group.")
@as_worker_option
@click.pass_obj
def move(app: App, masks: tuple[str, ...], group_name: str | None, bucket_name: str | None,
         worker_email: str | None) -> None:
    """Move tickets to another group or bucket (a bucket always belongs to one group).

    \b
    Examples:
      postdesk move XER-83472-879 --group Billing               to Billing's Inbox
      postdesk move XER-834 ABC-12 --group Billing --bucket Refunds
      postdesk move XER-834 --bucket Later                      within its own group
    """
    if group_name is None and bucket_name is None:
        raise click.UsageError("give --group G, --bucket B, or both")
    print_changes(app.desk().move(masks, group_name, bucket_name, cli_actor(worker_email)))


@click.command()
@MASKS
@click.argument("level", type=click.Choice([p.value for p in Priority], case_sensitive=False), metavar="LEVEL")
@as_worker_option
@click.pass_obj
def priority(app: App, masks: tuple[str, ...], level: str, worker_email: str | None) -> None:
    """Set tickets' priority: low, normal, high or urgent (`postdesk tickets --sort priority` orders by it).

    \b
    Examples:
      postdesk priority XER-83472-879 urgent
      postdesk priority XER-834 ABC-12 low --as jane@corp.example
    """
    print_changes(app.desk().set_priority(masks, Priority(level.lower()), cli_actor(worker_email)))

