"""How `postdesk show` prints a ticket for people: header, conversation, history; coloured on a terminal.

Piped, the same text comes out plain; on a terminal, a conversation taller than the screen goes
through the pager ($PAGER, else less), as git does, coloured only where the pager shows colour.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from workers.terminal_text import printable_values

HEADER_FIELDS = ("status", "priority", "group", "bucket", "owner", "organization", "created", "updated",
                 "last_action", "first_wrote", "last_wrote", "waiting_until")
KIND_LABELS = {"inbound": "", "reply": "reply", "comment": "internal comment", "bounce": "bounce"}


def print_conversation(ticket: dict[str, Any]) -> None:
    """Colour only for a terminal (not for a pipe, a file, or NO_COLOR); a long conversation is paged."""
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    lines = list(conversation_lines(ticket, colour))
    text = "\n".join(lines) + "\n"
    if sys.stdout.isatty() and len(lines) > shutil.get_terminal_size().lines - 1:
        click.echo_via_pager(text, color=pager_colour(os.environ) if colour else False)
    else:
        click.echo(text, nl=False, color=colour)


def pager_colour(environ: Mapping[str, str]) -> bool | None:
    """Whether the pager is sent colour: None for less, which lets click decide from $LESS.

    less shows an escape as the text `ESC[1m` unless told -R: click gives a less with no flags
    LESS=-R, keeps the colour when $LESS or $PAGER asks for -R, and strips it otherwise.
    Any other pager (more, most, a worker's own) is sent colour, as git sends it.
    """
    try:
        command = shlex.split(environ.get("PAGER", "")) or ["less"]
    except ValueError:  # unbalanced quotes: click cannot run it either; let it decide, colourless
        return None
    return None if Path(command[0]).stem == "less" else True


def conversation_lines(ticket: dict[str, Any], colour: bool) -> list[str]:
    """The ticket as lines for people, every string from mail made printable first."""
    ticket = printable_values(ticket)

    def style(value: str, **how: Any) -> str:
        return click.style(value, **how) if colour else value

    lines = [style(ticket["mask"], bold=True) + "  " + ticket["subject"]]
    lines += [f"  {key:<13} {_shown(ticket[key])}" for key in HEADER_FIELDS]
    lines.append(f"  {'recipients':<13} {', '.join(ticket['recipients']) or '-'}")
    lines.append(f"  {'spam':<13} {spam_summary(ticket)}")
    for number, message in enumerate(ticket["messages"], 1):
        lines += _message_lines(number, message, style)
    if "history" in ticket:
        lines.append(style("── history ──", fg="cyan"))
        lines += [f"  {e['at'][:19].replace('T', ' ')}  {e['actor']}  {e['action']}: {e['detail']}"
                  for e in ticket["history"]]
    return lines


def _message_lines(number: int, message: dict[str, Any], style: Any) -> list[str]:
    label = KIND_LABELS.get(message["kind"], message["kind"])
    flags = [label] if label else []
    if message["unverified_sender"]:
        flags.append("unverified sender")
    who = message["author"] if message["kind"] in ("reply", "comment") and message["author"] else message["from"]
    title = f"#{number} {who}  {(message['date'] or message['received'])[:16].replace('T', ' ')}"
    colour = "yellow" if message["kind"] == "comment" else ("red" if message["unverified_sender"] else "green")
    lines = ["", style(title + "".join(f"  [{f}]" for f in flags), fg=colour, bold=True)]
    lines += ["  " + line for line in message["text"].rstrip().splitlines()]
    for item in message["attachments"]:
        lines.append(style(f"  attachment {item['number']}: {item['filename'] or '(unnamed)'} "
                           f"({item['content_type']}, {item['size']} bytes)", fg="blue"))
    return lines


def _shown(value: Any) -> str:
    return "-" if value is None else str(value)


def spam_summary(ticket: dict[str, Any]) -> str:
    """`0.31% (training: not_spam) from: lunch 0.02, meeting 0.05`: the score as Cerb shows it."""
    if ticket["spam_score"] is None:
        return "not scored"
    words = ", ".join(f"{w['word']} {w['probability']:.2f}" for w in ticket["interesting_words"][:15])
    return (f"{ticket['spam_score']:.2%} (training: {ticket['spam_training']})"
            + (f" from: {words}" if words else " (no evidence: the filter was untrained or knew no word)"))
