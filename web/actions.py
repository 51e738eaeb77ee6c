"""One ticket action as a Helpdesk command, for the desk's forms and the API's JSON alike.

Each door reads its own input (a form, a JSON body) through `Fields` and says in its own words
that a due time is missing; which command an action is, and what it takes, is decided here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from core.desk import Actor, Helpdesk, TicketChanged
from core.errors import UsageError
from core.inbound import InboundAttachment
from core.models import SpamTraining
from core.worker_commands import due_time
from core.worker_tickets import parse_priority

ACTIONS = ("close", "reopen", "delete", "restore", "spam", "notspam", "assign", "priority", "move", "wait",
           "comment", "reply")
BULK_ACTIONS = ("close", "assign", "move", "priority", "spam", "delete")


class Fields(Protocol):
    """A request's named values, read as its door reads them."""

    missing_due: str  # what to say when neither a time nor a duration to wait was given

    def required(self, name: str) -> str: ...

    def optional(self, name: str) -> str | None: ...


def run_action(desk: Helpdesk, action: str, masks: Sequence[str], fields: Fields, actor: Actor,
               attachments: tuple[InboundAttachment, ...] = ()) -> list[TicketChanged]:
    """The Helpdesk command for the action (one of ACTIONS); runs in a worker thread."""
    if action in ("close", "reopen", "delete", "restore"):
        command = {"close": desk.close, "reopen": desk.reopen, "delete": desk.delete, "restore": desk.restore}
        return command[action](masks, actor)
    if action in ("spam", "notspam"):
        return desk.judge_spam(masks, SpamTraining.SPAM if action == "spam" else SpamTraining.NOT_SPAM, actor)
    if action == "assign":
        return desk.assign(masks, fields.required("owner"), actor)
    if action == "priority":
        return desk.set_priority(masks, parse_priority(fields.required("priority")), actor)
    if action == "move":
        return desk.move(masks, fields.optional("group"), fields.optional("bucket"), actor)
    if action == "wait":
        return desk.wait(masks, _due(fields, desk.clock()), actor)
    if action == "comment":
        return desk.comment(masks, fields.required("text"), actor)
    if action == "reply":
        return [desk.reply(masks[0], fields.required("text"), attachments, actor)]
    raise UsageError(f"no action {action!r}")


def _due(fields: Fields, now: datetime) -> datetime:
    due = due_time(fields.optional("for"), fields.optional("until"), now)
    if due is None:
        raise UsageError(fields.missing_due)
    return due
