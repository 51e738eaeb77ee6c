"""`postdesk bucket`, `org`, `worker edit` and `group edit` on a real database; organizations picked by the
sender's domain when mail opens a ticket; every command's --help (everyone's) shows examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from sqlalchemy import select

from core.db import Database
from core.inbound import Envelope
from core.models import Ticket
from core.settings import Settings
from mailgate.deliver import deliver
from testkit import make_mail, run_cli
from workers.cli import main

MINE = ("close", "reopen", "wait", "delete", "restore", "purge", "assign", "move", "priority", "comment", "reply",
        "new", "spam", "notspam", "worker", "group", "bucket", "org")


def in_process(config: Path, *args: str) -> Result:
    """The real command through click's runner, without a process start each."""
    result = CliRunner().invoke(main, ["--config", str(config), *args], prog_name="postdesk")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def ok(config: Path, *args: str) -> str:
    result = in_process(config, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def json_of(config: Path, *args: str) -> Any:
    return json.loads(ok(config, *args, "--json"))


def mail_from(database: Database, settings: Settings, sender: str) -> str:
    """A customer's first mail; returns the mask of the ticket it opened."""
    deliver(database, settings, make_mail(sender=sender, subject=f"From {sender}").as_bytes(),
            Envelope("deliver", "", ("support@example.com",)))
    with database.read() as session:
        return session.scalars(select(Ticket.mask).order_by(Ticket.id.desc())).first()


def test_buckets_hold_tickets_and_are_removed_only_empty(database: Database, settings: Settings,
                                                        config_path: Path) -> None:
    ok(config_path, "group", "add", "Billing", "--address", "billing@example.com")
    assert ok(config_path, "bucket", "add", "Later") == "added bucket Support/Later"
    assert ok(config_path, "bucket", "add", " Refunds ", "--group", "billing") == "added bucket Billing/Refunds"
    mask = mail_from(database, settings, "alice@customer.test")
    ok(config_path, "move", mask, "--group", "Billing", "--bucket", "refunds")
    assert json_of(config_path, "bucket", "list") == [
        {"group": "Billing", "name": "Inbox", "tickets": 0}, {"group": "Billing", "name": "Refunds", "tickets": 1},
        {"group": "Support", "name": "Inbox", "tickets": 0}, {"group": "Support", "name": "Later", "tickets": 0}]
    assert ok(config_path, "bucket", "edit", "refunds", "--group", "Billing", "--name", "Money back") == \
        "bucket refunds is now Billing/Money back"
    assert json_of(config_path, "show", mask)["bucket"] == "Money back"

    removing = run_cli(config_path, "bucket", "remove", "Money back", "--group", "Billing")  # a whole process
    assert (removing.returncode, removing.stderr.decode()) == (
        1, "postdesk: bucket Billing/Money back still holds 1 ticket; move them first\n")
    ok(config_path, "move", mask, "--group", "Support")
    assert ok(config_path, "bucket", "remove", "money back", "--group", "Billing") == "removed bucket Billing/money back"
    assert ok(config_path, "bucket", "remove", "Later") == "removed bucket Support/Later"
    assert json_of(config_path, "bucket", "list", "--group", "Billing") == [
        {"group": "Billing", "name": "Inbox", "tickets": 0}]


def test_a_new_ticket_belongs_to_the_organization_of_its_senders_domain(database: Database, settings: Settings,
                                                                         config_path: Path) -> None:
    assert ok(config_path, "org", "add", "Acme Corp", "--domain", "@Acme.Test") == "added organization Acme Corp (acme.test)"
    ok(config_path, "org", "add", "Acme Labs", "--domain", "labs.acme.test")
    ok(config_path, "org", "add", "Private customers")
    senders = ["bob@acme.test", "carl@mail.acme.test", "dee@x.labs.acme.test", "eve@notacme.test", "fay@test"]
    masks = [mail_from(database, settings, sender) for sender in senders]
    assert [json_of(config_path, "show", m)["organization"] for m in masks] == [
        "Acme Corp", "Acme Corp", "Acme Labs", None, None]
    assert json_of(config_path, "org", "list") == [
        {"name": "Acme Corp", "domain": "acme.test", "tickets": 2},
        {"name": "Acme Labs", "domain": "labs.acme.test", "tickets": 1},
        {"name": "Private customers", "domain": None, "tickets": 0}]

    assert ok(config_path, "org", "edit", "acme labs", "--name", "Acme Research", "--no-domain") == \
        "organization Acme Research: no domain"
    assert ok(config_path, "org", "edit", "Private customers", "--domain", "notacme.test") == \
        "organization Private customers: domain notacme.test"
    later = mail_from(database, settings, "gil@labs.acme.test")  # Acme Labs' domain is gone: the parent's now
    again = mail_from(database, settings, "hal@notacme.test")
    assert [json_of(config_path, "show", m)["organization"] for m in (later, again)] == [
        "Acme Corp", "Private customers"]
    assert ok(config_path, "org", "remove", "acme corp") == "removed organization acme corp; 3 tickets now belong to none"
    assert json_of(config_path, "show", masks[0])["organization"] is None
    assert [o["name"] for o in json_of(config_path, "org", "list")] == ["Acme Research", "Private customers"]


def test_tickets_are_filed_under_an_organization_by_hand(database: Database, settings: Settings,
                                                         config_path: Path) -> None:
    ok(config_path, "org", "add", "Acme", "--domain", "acme.test")
    ok(config_path, "org", "add", "Globex")
    ok(config_path, "worker", "add", "jane@corp.test", "--name", "Jane")
    acme, other = mail_from(database, settings, "ann@acme.test"), mail_from(database, settings, "bo@gmail.test")
    assert ok(config_path, "org", "set", acme, other[:7], "--org", "globex", "--as", "jane@corp.test") == \
        f"{acme}: organization Globex\n{other}: organization Globex"
    assert ok(config_path, "org", "set", other, "--org", "Globex") == f"{other}: organization Globex already"
    assert ok(config_path, "org", "set", acme, "--org", "none") == f"{acme}: organization none"
    assert [json_of(config_path, "show", m)["organization"] for m in (acme, other)] == [None, "Globex"]
    history = json_of(config_path, "show", acme, "--history")["history"]
    assert [(e["actor"], e["detail"]) for e in history if e["action"] == "organization"] == [
        ("jane@corp.test", "Acme -> Globex"), ("postdesk cli", "Globex -> none")]
    failed = in_process(config_path, "org", "set", acme, other, "--org", "Nope")
    assert (failed.exit_code, failed.stderr.strip()) == (1, "postdesk: no organization named 'Nope'")
    assert json_of(config_path, "show", other)["organization"] == "Globex"


def test_worker_and_group_edit(config_path: Path) -> None:
    ok(config_path, "group", "add", "Billing", "--address", "billing@example.com")
    ok(config_path, "worker", "add", "jane@corp.test", "--name", "Jane", "--group", "Support")
    assert ok(config_path, "worker", "edit", "Jane@Corp.test", "--name", "Jane Doe", "--join", "billing",
              "--join", "Billing", "--leave", "support") == "worker jane@corp.test: Jane Doe (Billing)"
    assert json_of(config_path, "worker", "list") == [{"email": "jane@corp.test", "name": "Jane Doe",
                                                       "groups": ["Billing"]}]
    assert ok(config_path, "group", "edit", "billing", "--address", "Invoices@Example.com", "--no-auto-reply",
              "--close-notice", "--auto-close-days", "7") == (
        "group Billing: address invoices@example.com, auto-reply off, close notice on, auto-close after 7 days")
    assert ok(config_path, "group", "edit", "Billing", "--auto-reply", "--no-close-notice") == \
        "group Billing: auto-reply on, close notice off"
    assert [g for g in json_of(config_path, "group", "list") if g["name"] == "Billing"] == [
        {"name": "Billing", "address": "invoices@example.com", "auto_reply": True, "close_notice": False,
         "members": ["jane@corp.test"], "auto_close_days": 7, "language": "", "transcripts": False,
         "transcript_address": ""}]


@pytest.mark.sqlite_only
def test_admin_errors_are_one_line_and_change_nothing(config_path: Path) -> None:
    ok(config_path, "worker", "add", "jane@corp.test", "--name", "Jane")
    ok(config_path, "group", "add", "Billing", "--address", "billing@example.com")
    ok(config_path, "bucket", "add", "Later")
    ok(config_path, "org", "add", "Acme", "--domain", "acme.test")
    before = [json_of(config_path, *what, "list") for what in (("worker",), ("group",), ("bucket",), ("org",))]
    cases = [
        (("worker", "edit", "ghost@corp.test", "--name", "X"), "no worker with address ghost@corp.test"),
        (("worker", "edit", "jane@corp.test"), "nothing to change: give --name, --join GROUP or --leave GROUP"),
        (("worker", "edit", "jane@corp.test", "--join", "Nope"), "no group named 'Nope'"),
        (("worker", "edit", "jane@corp.test", "--name", " "), "a worker's name cannot be empty"),
        (("group", "edit", "Billing", "--address", "support@example.com"),
         "support@example.com is the address of group Support already"),
        (("group", "edit", "Billing", "--address", "jane@corp.test"), "jane@corp.test is a worker's address"),
        (("group", "edit", "Billing", "--address", "nowhere"), "not a mail address: 'nowhere'"),
        (("group", "edit", "Billing"), "nothing to change: give --address, --[no-]auto-reply, --[no-]close-notice, "
                                       "--auto-close-days N, --no-auto-close, --language CODE, --[no-]transcripts "
                                       "or --transcript-address ADDRESS"),
        (("group", "edit", "Billing", "--language", "français"), "not a language code: 'français' (e.g. fr, de, pt-br)"),
        (("bucket", "add", "later"), "group Support has a bucket 'later' already"),
        (("bucket", "add", "X", "--group", "Nope"), "no group named 'Nope'"),
        (("bucket", "edit", "Inbox", "--name", "Main"), "the Inbox cannot be renamed: new tickets land there"),
        (("bucket", "remove", "inbox"), "the Inbox cannot be removed: new tickets land there"),
        (("bucket", "remove", "Nope"), "group Support has no bucket 'Nope'"),
        (("org", "add", "acme"), "an organization named 'acme' exists already"),
        (("org", "add", "Other", "--domain", "ACME.test"), "acme.test is the domain of Acme already"),
        (("org", "add", "Other", "--domain", "not a domain"), "not a domain: 'not a domain'"),
        (("org", "edit", "Acme", "--domain", "x.test", "--no-domain"), "give either --domain D or --no-domain"),
        (("org", "edit", "Acme"), "nothing to change: give --name, --domain D or --no-domain"),
        (("org", "remove", "Nope"), "no organization named 'Nope'"),
    ]
    for args, line in cases:
        result = in_process(config_path, *args)
        assert (result.exit_code, result.stderr.splitlines()) == (1, [f"postdesk: {line}"]), args
    for args in (("bucket", "edit", "Later"), ("org", "add"), ("group", "edit", "Billing", "--auto-close-days", "x")):
        assert in_process(config_path, *args).exit_code == 2, args
    assert [json_of(config_path, *what, "list") for what in (("worker",), ("group",), ("bucket",), ("org",))] == before


@pytest.mark.sqlite_only
def test_every_command_has_help_with_examples(config_path: Path) -> None:
    paths = _command_paths(main, ())
    assert {path[0] for path in paths if path} >= set(MINE)
    for path in paths:
        result = in_process(config_path, *path, "--help")
        assert result.exit_code == 0 and "Example" in result.stdout, path
    assert "--json" in ok(config_path, "bucket", "list", "--help") and "--json" in ok(config_path, "org", "list", "--help")


def _command_paths(command: click.Command, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every command and subcommand below this one, as the words that call it (hidden ones left out)."""
    if not isinstance(command, click.Group):
        return [path]
    context = click.Context(command)
    found = [path]
    for name in command.list_commands(context):
        sub = command.get_command(context, name)
        if sub is not None and not sub.hidden:
            found += _command_paths(sub, (*path, name))
    return found
