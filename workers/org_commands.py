"""`postdesk org …`: customers' organizations; a ticket opened by mail from an organization's domain is filed under it."""

from __future__ import annotations

from dataclasses import asdict

import click

from core.errors import UsageError
from core.organizations import NO_ORGANIZATION
from workers.acting import MASKS, cli_actor, print_changes
from workers.app import App
from workers.options import as_worker_option
from workers.output import print_json, print_table


@click.group()
def org() -> None:
    """Organizations: new tickets from their domain (or a subdomain of it) belong to them.

    \b
    Examples:
      postdesk org add "Acme Corp" --domain acme.test
      postdesk org list --json
      postdesk org edit "Acme Corp" --domain acme.example
      postdesk org remove "Acme Corp"
      postdesk org set XER-83472-879 --org "Acme Corp"
    """


@org.command("set")
@MASKS
@click.option("--org", "name", required=True, metavar="NAME", help=f"The organization, or `{NO_ORGANIZATION}`.")
@as_worker_option
@click.pass_obj
def org_set(app: App, masks: tuple[str, ...], name: str, worker_email: str | None) -> None:
    """File tickets under an organization by hand (mail files them by the sender's domain).

    \b
    Examples:
      postdesk org set XER-83472-879 --org "Acme Corp"
      postdesk org set XER-834 ABC-12 --org none --as jane@corp.example
    """
    print_changes(app.desk().set_organization(masks, name, cli_actor(worker_email)))


@org.command("add")
@click.argument("name")
@click.option("--domain", metavar="D", help="Mail from this domain or its subdomains opens tickets of this organization.")
@click.pass_obj
def org_add(app: App, name: str, domain: str | None) -> None:
    """Add an organization.

    \b
    Examples:
      postdesk org add "Acme Corp" --domain acme.test
      postdesk org add "Private customers"
    """
    added = app.desk().add_organization(name, domain)
    click.echo(f"added organization {added.name}" + (f" ({added.domain})" if added.domain else ""))


@org.command("list")
@click.option("--json", "as_json", is_flag=True, help='Print JSON: [{"name", "domain", "tickets"}].')
@click.pass_obj
def org_list(app: App, as_json: bool) -> None:
    """List organizations with their domains and how many tickets each has.

    \b
    Examples:
      postdesk org list
      postdesk org list --json
    """
    rows = app.desk().organizations()
    if as_json:
        print_json([asdict(r) for r in rows])
        return
    print_table(["name", "domain", "tickets"], [[r.name, r.domain or "", str(r.tickets)] for r in rows])


@org.command("edit")
@click.argument("name")
@click.option("--name", "new_name", help="A new name.")
@click.option("--domain", metavar="D", help="A new domain (tickets opened from now on follow it).")
@click.option("--no-domain", is_flag=True, help="Forget the domain: no new ticket is filed under it by mail.")
@click.pass_obj
def org_edit(app: App, name: str, new_name: str | None, domain: str | None, no_domain: bool) -> None:
    """Rename an organization or change its domain; its tickets stay with it.

    \b
    Examples:
      postdesk org edit "Acme Corp" --name "Acme Inc"
      postdesk org edit "Acme Inc" --domain acme.example
      postdesk org edit "Acme Inc" --no-domain
    """
    if domain is not None and no_domain:
        raise UsageError("give either --domain D or --no-domain")
    if new_name is None and domain is None and not no_domain:
        raise UsageError("nothing to change: give --name, --domain D or --no-domain")
    changed = app.desk().edit_organization(name, new_name=new_name, domain=domain, no_domain=no_domain)
    click.echo(f"organization {changed.name}: " + (f"domain {changed.domain}" if changed.domain else "no domain"))


@org.command("remove")
@click.argument("name")
@click.pass_obj
def org_remove(app: App, name: str) -> None:
    """Remove an organization; its tickets stay, belonging to none.

    \b
    Example:
      postdesk org remove "Acme Corp"
    """
    released = app.desk().remove_organization(name)
    click.echo(f"removed organization {name}" + (f"; {released} tickets now belong to none" if released else ""))
