"""`postdesk assign`, `move` and `priority`: who has a ticket, where it sits, how urgent it is."""

from __future__ import annotations

import click

from core.buckets import destination, move_ticket, place
from core.models import Priority, Ticket, Worker
from core.staff import find_worker
from core.ticket_states import NOBODY, assign_owner, set_priority
from workers.acting import MASKS, Acting, act_on_tickets, said
from workers.app import App
from workers.options import as_worker_option

ME = "me"


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
    def change(acting: Acting, ticket: Ticket) -> str:
        new_owner = _owner(acting, owner)
        changed = assign_owner(acting.session, ticket, new_owner, actor=acting.actor, now=acting.now)
        name = new_owner.email if new_owner else NOBODY
        return said(changed, f"owner {name}", f"owner {name} already")

    act_on_tickets(app, masks, worker_email, change)


def _owner(acting: Acting, given: str) -> Worker | None:
    if given.strip().lower() == NOBODY:
        return None
    if given.strip().lower() == ME:
        return acting.required_worker("--owner me")
    return find_worker(acting.session, given)


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

    def change(acting: Acting, ticket: Ticket) -> str:
        bucket = destination(acting.session, ticket, group_name, bucket_name)
        changed = move_ticket(acting.session, ticket, bucket, actor=acting.actor, now=acting.now)
        return said(changed, f"moved to {place(acting.session, bucket)}", f"in {place(acting.session, bucket)} already")

    act_on_tickets(app, masks, worker_email, change)


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
    chosen = Priority(level.lower())

    def change(acting: Acting, ticket: Ticket) -> str:
        changed = set_priority(acting.session, ticket, chosen, actor=acting.actor, now=acting.now)
        return said(changed, f"priority {chosen.value}", f"priority {chosen.value} already")

    act_on_tickets(app, masks, worker_email, change)

