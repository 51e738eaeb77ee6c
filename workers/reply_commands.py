"""`postdesk reply` and `postdesk new`: a worker answers or opens a ticket from the terminal, as if by mail."""

from __future__ import annotations

import mimetypes
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from core.errors import UsageError
from core.inbound import InboundAttachment
from core.models import utcnow
from core.notify import Outbound
from core.queries import find_ticket
from core.staff import find_worker
from core.worker_tickets import open_ticket_as_worker, parse_priority, reply_as_worker
from workers.app import App

WORKER_ENV = "POSTDESK_WORKER"
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _writer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--as, --file and --attach, shared by every command that files a worker's text."""
    command = click.option("--attach", "attach", multiple=True, type=_FILE,
                           help="Attach this file (repeatable).")(command)
    command = click.option("--file", "text_file", type=_FILE,
                           help="Read the text from this file (default: stdin).")(command)
    return click.option("--as", "worker_email", envvar=WORKER_ENV, required=True, metavar="WORKER",
                        help=f"The worker writing (default: ${WORKER_ENV}).")(command)


@click.command()
@click.argument("mask")
@_writer_options
@click.pass_obj
def reply(app: App, mask: str, worker_email: str, text_file: Path | None, attach: tuple[Path, ...]) -> None:
    """Answer a ticket: the text goes to every recipient, From the group with your name.

    Commands at the top of the text work as by mail (#comment, #close, #waiting 3d, #owner me, ...).

    \b
    Examples:
      postdesk reply XER-83472-879 --as jane@corp.example --file answer.txt
      printf '#comment\\nCalled them back.\\n' | POSTDESK_WORKER=jane@corp.example postdesk reply XER-83472-879
    """
    text, attachments = _read_text(text_file), _read_attachments(attach)
    with app.database().write() as session:
        ticket = find_ticket(session, mask)
        worker = find_worker(session, worker_email)
        stored = reply_as_worker(session, Outbound.from_settings(app.settings), ticket, worker, text,
                                 attachments, utcnow())
    click.echo(f"{ticket.mask}: {stored.kind.value} filed, ticket {ticket.status.value}")


@click.command()
@click.option("--to", "to", multiple=True, required=True, metavar="ADDR", help="A recipient (repeatable).")
@click.option("--cc", "cc", multiple=True, metavar="ADDR",
              help="Another recipient (repeatable); the helpdesk writes to every recipient alike.")
@click.option("--subject", required=True, help="The ticket's subject.")
@click.option("--priority", default="normal", show_default=True, metavar="P", help="low, normal, high or urgent.")
@click.option("--group", "group_name", metavar="G", help="The group the ticket belongs to (default: the settings' default group).")
@_writer_options
@click.pass_obj
def new(app: App, to: tuple[str, ...], cc: tuple[str, ...], subject: str, priority: str, group_name: str | None,
        worker_email: str, text_file: Path | None, attach: tuple[Path, ...]) -> None:
    """Open a ticket and send its recipients the first message; prints the new mask.

    \b
    Example:
      postdesk new --to "Alice <alice@example.org>" --subject "Your order" --as jane@corp.example < text.txt
    """
    chosen_priority = parse_priority(priority)
    text, attachments = _read_text(text_file), _read_attachments(attach)
    with app.database().write() as session:
        worker = find_worker(session, worker_email)
        ticket = open_ticket_as_worker(session, Outbound.from_settings(app.settings), worker, to, cc, subject,
                                       chosen_priority, group_name, text, attachments, utcnow(),
                                       helpdesk=app.settings.helpdesk)
    click.echo(ticket.mask)


def _read_text(path: Path | None) -> str:
    raw = path.read_bytes() if path else sys.stdin.buffer.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the text is not UTF-8") from None
    if not text.strip():
        raise UsageError("no text: give --file FILE or pipe the text on stdin")
    return text


def _read_attachments(paths: tuple[Path, ...]) -> tuple[InboundAttachment, ...]:
    return tuple(InboundAttachment(p.name, _content_type(p), p.read_bytes()) for p in paths)


def _content_type(path: Path) -> str:
    """Guessed from the name; a compressed file (`log.txt.gz`) is sent as what it is, opaque bytes."""
    content_type, encoding = mimetypes.guess_type(path.name)
    return content_type if content_type and not encoding else "application/octet-stream"
