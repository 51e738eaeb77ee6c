"""`postdesk reply`, `comment` and `new`: a worker answers, notes or opens a ticket from the terminal, as if by mail."""

from __future__ import annotations

import mimetypes
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from core.errors import UsageError
from core.inbound import InboundAttachment
from core.reply_text import clean_worker_text
from core.staff import find_worker
from core.ticket_views import show_ticket
from core.desk import NewTicket
from core.worker_tickets import parse_priority
from workers.acting import MASKS, cli_actor, need_worker, print_changes
from workers.app import App
from workers.options import as_worker_option

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _writer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--as, --file and --attach, shared by every command that files a worker's text."""
    command = click.option("--attach", "attach", multiple=True, type=_FILE,
                           help="Attach this file (repeatable).")(command)
    command = click.option("--file", "text_file", type=_FILE,
                           help="Read the text from this file (default: stdin).")(command)
    return as_worker_option(command)


@click.command()
@click.argument("mask")
@click.argument("text", required=False)
@_writer_options
@click.pass_obj
def reply(app: App, mask: str, text: str | None, worker_email: str | None, text_file: Path | None,
          attach: tuple[Path, ...]) -> None:
    """Answer a ticket: the text goes to every recipient, From the group with your name.

    The text is TEXT, else --file, else stdin; at a terminal with neither, $EDITOR opens on the
    quoted conversation (save it unchanged or empty to send nothing). Commands at the top of the
    text work as by mail (#comment, #close, #waiting 3d, #owner me, ...).

    \b
    Examples:
      postdesk reply XER-83472-879 "Unplug it, then plug it in again." --as jane@corp.example
      postdesk reply XER-834 --as jane@corp.example          write it in $EDITOR
      postdesk reply XER-83472-879 --as jane@corp.example --file answer.txt --attach manual.pdf
      printf '#close\\nFixed.\\n' | POSTDESK_WORKER=jane@corp.example postdesk reply XER-83472-879
    """
    email = need_worker(worker_email, "reply")
    if text is not None and text_file is not None:
        raise click.UsageError("give the text once: as TEXT or with --file")
    if text is None and (text_file or not sys.stdin.isatty()):
        text = _read_text(text_file)
    elif text is None:
        text = _written_in_editor(app, mask, email)
    elif not text.strip():
        raise UsageError("no text: the reply is empty")
    attachments = _read_attachments(attach)
    print_changes([app.desk().reply(mask, text, attachments, cli_actor(email))])


def _written_in_editor(app: App, mask: str, email: str) -> str:
    """The worker's text from $EDITOR, opened on the quoted conversation; unchanged or empty sends nothing."""
    with app.database().read() as session:  # no transaction stays open while the worker writes
        find_worker(session, email)
        template = reply_template(show_ticket(session.connection(), mask))
    edited = click.edit(template, extension=".txt", require_save=True)
    if edited is None or edited.strip() == template.strip():
        raise UsageError("reply not sent: the text was left unchanged")
    if not clean_worker_text(edited, ()).strip():
        raise UsageError("reply not sent: the text is empty")
    return edited


def reply_template(ticket: dict[str, Any]) -> str:
    """Room for the answer, then the conversation quoted, newest first; the quote is cut before relaying."""
    parts = ["", ""]
    for message in reversed(ticket["messages"]):
        if message["kind"] not in ("inbound", "reply"):
            continue  # internal comments and bounces are not quoted into what may be sent
        when = (message["date"] or message["received"])[:16].replace("T", " ")
        parts.append(f"On {when} UTC, {message['from_name'] or message['from']} wrote:")
        parts.extend(f"> {line}".rstrip() for line in message["text"].splitlines())
        parts.append("")
    return "\n".join(parts)


@click.command()
@MASKS
@click.argument("text")
@as_worker_option
@click.pass_obj
def comment(app: App, masks: tuple[str, ...], text: str, worker_email: str | None) -> None:
    """Add an internal note to tickets: kept with your name, never sent to a customer.

    \b
    Examples:
      postdesk comment XER-83472-879 "Called them; they will send the invoice." --as jane@corp.example
      POSTDESK_WORKER=jane@corp.example postdesk comment XER-834 ABC-12 "Same customer as ABC-12."
    """
    need_worker(worker_email, "comment")
    print_changes(app.desk().comment(masks, text, cli_actor(worker_email)))


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
        worker_email: str | None, text_file: Path | None, attach: tuple[Path, ...]) -> None:
    """Open a ticket and send its recipients the first message; prints the new mask.

    \b
    Example:
      postdesk new --to "Alice <alice@example.org>" --subject "Your order" --as jane@corp.example < text.txt
    """
    email = need_worker(worker_email, "new")
    chosen_priority = parse_priority(priority)
    text, attachments = _read_text(text_file), _read_attachments(attach)
    request = NewTicket(to=to, cc=cc, subject=subject, priority=chosen_priority, group=group_name, text=text,
                        attachments=attachments)
    click.echo(app.desk().open_ticket(request, cli_actor(email)))


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
