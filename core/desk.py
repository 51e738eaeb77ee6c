"""The helpdesk's commands on tickets, behind every door: the CLI today, the web desk next.

The admin commands (workers, groups, buckets, organizations) are its base class's, in core.desk_admin.

A `Helpdesk` is built from the settings (the database, the clock, how mail goes out). Each command
resolves the masks it is given (whole, or their unambiguous first characters), checks who acts,
changes every ticket in one transaction (all or nothing: one unknown mask or one refused ticket
changes none), audits through core.lifecycle and its neighbours, and answers with plain values
(`TicketChanged`), never an ORM object. An adapter parses its input, calls one command and renders
the answer; it holds no rule of its own.

Mail commands (`#close` in a worker's mail) run inside the filing of that mail (core.pipeline), a
transaction of their own already, and call the same lifecycle functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.buckets import destination, move_ticket, place
from core.db import Database, open_configured
from core.desk_accounts import AccountCommands
from core.desk_admin import AdminCommands
from core.desk_portal import PortalCommands
from core.desk_transcripts import TranscriptCommands
from core.errors import UsageError
from core.inbound import InboundAttachment
from core.lifecycle import (close_ticket, delete_ticket, judge_spam, refuse_deleted, reopen_ticket,
                            restore_ticket, wait_until)
from core.models import Priority, SpamTraining, Ticket, Worker, utcnow
from core.notify import Outbound
from core.organizations import NO_ORGANIZATION, find_organization, set_organization
from core.purge import Cutoffs, PurgeReport, count_purgeable, run_purge
from core.settings import Settings
from core.staff import find_worker
from core.ticket_states import NOBODY, assign_owner, locked_tickets, set_priority
from core.ticket_views import (SEARCH_LIMIT, SEARCHED, TicketFilter, awaiting_answer_count, html_message_numbers,
                               list_tickets, message_html, search_tickets, show_ticket)
from core.worker_tickets import comment_as_worker, open_ticket_as_worker, reply_as_worker
from spam.training import Lesson

CLI_ACTOR = "postdesk cli"  # who the history names when a command is run without a worker
ME = "me"  # `assign --owner me`: the acting worker


@dataclass(frozen=True)
class Actor:
    """Who asks: a worker by address (checked against the staff), or a named system door (`postdesk cli`)."""

    worker_email: str | None = None
    system: str = CLI_ACTOR
    named_by: str = "a worker"  # how this door names a worker, for the error when one is needed


@dataclass(frozen=True)
class TicketChanged:
    """What a command did to one ticket: its mask, its status after, and the line the history of this
    command would say (`closed`, `closed already`)."""

    mask: str
    said: str
    changed: bool
    status: str


@dataclass(frozen=True)
class Acting:
    """What a change to one ticket needs: the transaction, who acts, the time, how to write mail."""

    session: Session
    worker: Worker | None
    now: datetime
    outbound: Outbound
    asker: Actor

    @property
    def actor(self) -> str:
        """The name the history gives: the worker's address, else the door's name."""
        return self.worker.email if self.worker else self.asker.system

    def required_worker(self, need: str) -> Worker:
        """The acting worker, for what only a worker can do (`--owner me`)."""
        if self.worker is None:
            raise UsageError(f"{need} needs to know who you are: give {self.asker.named_by}")
        return self.worker


@dataclass(frozen=True)
class NewTicket:
    """What a worker gives to open a ticket: recipients, subject, priority, group, the first message."""

    to: Sequence[str]
    subject: str
    text: str
    cc: Sequence[str] = ()
    priority: Priority = Priority.NORMAL
    group: str | None = None
    attachments: Sequence[InboundAttachment] = ()
    notify: bool = True  # False: opened without mailing anyone; the text is kept as an internal note


Change = Callable[[Acting, Ticket], tuple[bool, str]]  # changes one ticket: whether it changed, and what to say


class Helpdesk(AdminCommands, AccountCommands, PortalCommands, TranscriptCommands):
    """One helpdesk: its settings, its database, its clock; a method per use case on tickets (and, from
    AdminCommands, on workers, groups, buckets and organizations; from AccountCommands, on passwords,
    sessions and API tokens; from PortalCommands, on what customers do in the portal; from
    TranscriptCommands, on encrypted transcripts)."""

    def __init__(self, settings: Settings, database: Database | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.database = database or open_configured(settings.database)
        self.clock = clock

    def close(self, masks: Sequence[str], actor: Actor) -> list[TicketChanged]:
        """Close tickets; recipients get the close notice where the group sends one."""
        return self._on_tickets(masks, actor, lambda a, t: _said(
            close_ticket(a.session, a.outbound, t, actor=a.actor, reason="closed", now=a.now), "closed"))

    def reopen(self, masks: Sequence[str], actor: Actor) -> list[TicketChanged]:
        """Open waiting or closed tickets again (a due time is dropped)."""
        return self._on_tickets(masks, actor, lambda a, t: _said(
            reopen_ticket(a.session, t, actor=a.actor, reason="reopened", now=a.now), "open"))

    def wait(self, masks: Sequence[str], due: datetime, actor: Actor) -> list[TicketChanged]:
        """Set tickets waiting until `due`, when the scheduler reopens them."""
        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            wait_until(a.session, ticket, due, actor=a.actor, now=a.now)
            return True, f"waiting until {due:%Y-%m-%d %H:%M} UTC"

        return self._on_tickets(masks, actor, change)

    def delete(self, masks: Sequence[str], actor: Actor) -> list[TicketChanged]:
        """Move tickets to deleted, until a purge or `restore`."""
        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            delete_ticket(a.session, ticket, actor=a.actor, now=a.now)
            return True, "deleted"

        return self._on_tickets(masks, actor, change, deleted_ok=True)

    def restore(self, masks: Sequence[str], actor: Actor) -> list[TicketChanged]:
        """Bring deleted tickets back as open."""
        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            restore_ticket(a.session, ticket, actor=a.actor, now=a.now)
            return True, "restored, open"

        return self._on_tickets(masks, actor, change, deleted_ok=True)

    def assign(self, masks: Sequence[str], owner: str, actor: Actor) -> list[TicketChanged]:
        """Give tickets to a worker (an address, `me`, or `none`): their mail then goes to the owner alone."""
        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            chosen = _owner(a, owner)
            name = chosen.email if chosen else NOBODY
            return _said(assign_owner(a.session, ticket, chosen, actor=a.actor, now=a.now), f"owner {name}")

        return self._on_tickets(masks, actor, change)

    def move(self, masks: Sequence[str], group: str | None, bucket: str | None, actor: Actor) -> list[TicketChanged]:
        """Move tickets to another group (its Inbox unless a bucket is named) or bucket."""
        if group is None and bucket is None:
            raise UsageError("name a group, a bucket, or both")

        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            target = destination(a.session, ticket, group, bucket)
            where = place(a.session, target)
            moved = move_ticket(a.session, ticket, target, actor=a.actor, now=a.now)
            return moved, f"moved to {where}" if moved else f"in {where} already"

        return self._on_tickets(masks, actor, change)

    def set_priority(self, masks: Sequence[str], priority: Priority, actor: Actor) -> list[TicketChanged]:
        """Set tickets' priority."""
        return self._on_tickets(masks, actor, lambda a, t: _said(
            set_priority(a.session, t, priority, actor=a.actor, now=a.now), f"priority {priority.value}"))

    def set_organization(self, masks: Sequence[str], name: str, actor: Actor) -> list[TicketChanged]:
        """File tickets under an organization by hand (or `none`)."""
        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            chosen = None if name.strip().lower() == NO_ORGANIZATION else find_organization(a.session, name)
            shown = chosen.name if chosen else NO_ORGANIZATION
            return _said(set_organization(a.session, ticket, chosen, actor=a.actor, now=a.now),
                         f"organization {shown}")

        return self._on_tickets(masks, actor, change)

    def judge_spam(self, masks: Sequence[str], verdict: SpamTraining, actor: Actor) -> list[TicketChanged]:
        """A worker's verdict: spam trains spam and deletes; not spam trains not spam and opens (a held
        ticket is released as if its mail had just arrived)."""
        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            lesson = judge_spam(a.session, a.outbound, ticket, verdict, actor=a.actor, now=a.now)
            return lesson is Lesson.LEARNT, f"{LESSONS[lesson].format(verdict=verdict.value)}, ticket {ticket.status.value}"

        return self._on_tickets(masks, actor, change, deleted_ok=True)

    def comment(self, masks: Sequence[str], text: str, actor: Actor) -> list[TicketChanged]:
        """An internal note on tickets, kept with the worker's name, never sent to a customer."""
        if not text.strip():
            raise UsageError("no text: the comment is empty")

        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            comment_as_worker(a.session, a.outbound.hostname, ticket, a.required_worker("comment"), text, a.now)
            return True, f"comment filed, ticket {ticket.status.value}"

        return self._on_tickets(masks, actor, change)

    def reply(self, mask: str, text: str, attachments: Sequence[InboundAttachment], actor: Actor) -> TicketChanged:
        """A worker's answer to the ticket's recipients (with its `#commands`), relayed without the worker's address.

        Refused on a deleted or held ticket: a reply would tell a spammer the address works.
        """
        def change(a: Acting, ticket: Ticket) -> tuple[bool, str]:
            stored = reply_as_worker(a.session, a.outbound, ticket, a.required_worker("reply"), text,
                                     tuple(attachments), a.now)
            return True, f"{stored.kind.value} filed, ticket {ticket.status.value}"

        return self._on_tickets([mask], actor, change)[0]

    def open_ticket(self, request: NewTicket, actor: Actor) -> str:
        """A ticket a worker opens, its first message sent to its recipients; returns the new mask."""
        with self.database.write() as session:
            acting = self._acting(session, actor)
            ticket = open_ticket_as_worker(session, acting.outbound, acting.required_worker("new"), request.to,
                                           request.cc, request.subject, request.priority, request.group,
                                           request.text, tuple(request.attachments), self.clock(),
                                           helpdesk=self.settings.helpdesk, notify=request.notify)
            return ticket.mask

    def purge(self, actor: Actor, *, older_than: timedelta | None = None, dry_run: bool = False) -> PurgeReport:
        """Remove for good what is past the retention settings (or `older_than`), in batches each committed,
        so a crash loses one batch at most; a dry run only counts (and names no one, so checks no one)."""
        now = self.clock()
        cutoffs = Cutoffs.older_than(older_than, now) if older_than else Cutoffs.from_settings(self.settings, now)
        if dry_run:
            with self.database.read() as session:
                return count_purgeable(session, cutoffs)
        with self.database.read() as session:  # closed before purging: no transaction spans the batches
            named = find_worker(session, actor.worker_email).email if actor.worker_email else actor.system
        return run_purge(self.database, cutoffs, actor=named, clock=self.clock)

    # reading: plain dictionaries with the field names of the CLI's --json

    def tickets(self, wanted: TicketFilter = TicketFilter()) -> list[dict[str, Any]]:
        """One page of tickets matching the filter (as `postdesk tickets`)."""
        with self.database.read() as session:
            return list_tickets(session.connection(), wanted)

    def ticket(self, mask: str) -> dict[str, Any]:
        """One ticket's fields, recipients and conversation (as `postdesk show --json`)."""
        with self.database.read() as session:
            return show_ticket(session.connection(), mask)

    def message_html(self, mask: str, number: int) -> str:
        """The stored HTML of the ticket's Nth message, "" when it has none (for the desk's sanitised view)."""
        with self.database.read() as session:
            return message_html(session.connection(), mask, number)

    def html_message_numbers(self, mask: str) -> set[int]:
        """Which of the ticket's messages carry HTML, numbered as `show` lists them."""
        with self.database.read() as session:
            return html_message_numbers(session.connection(), mask)

    def awaiting_answer(self) -> int:
        """How many open tickets wait for a worker's answer (their last word is a customer's)."""
        with self.database.read() as session:
            return awaiting_answer_count(session.connection())

    def search(self, query: str, limit: int = SEARCH_LIMIT,
               statuses: tuple[str, ...] = SEARCHED) -> list[dict[str, Any]]:
        """Tickets holding every word, best first (as `postdesk search`: deleted and held ones only when asked)."""
        with self.database.read() as session:
            return search_tickets(session.connection(), query, limit, statuses)

    def _acting(self, session: Session, actor: Actor) -> Acting:
        """Who acts (their worker row, checked now), the time and the outbound, for one transaction."""
        worker = find_worker(session, actor.worker_email) if actor.worker_email else None
        return Acting(session, worker, self.clock(), Outbound.from_settings(self.settings), actor)

    def _on_tickets(self, masks: Sequence[str], actor: Actor, change: Change, *,
                    deleted_ok: bool = False) -> list[TicketChanged]:
        """Resolve every mask, then change every ticket, all in one transaction.

        A deleted or held ticket is refused unless the command is about deletion or a verdict (`deleted_ok`).
        """
        with self.database.write() as session:
            acting = self._acting(session, actor)
            done = []
            for ticket in locked_tickets(session, masks):
                if not deleted_ok:
                    refuse_deleted(ticket)
                changed, said = change(acting, ticket)
                done.append(TicketChanged(ticket.mask, said, changed, ticket.status.value))
        return done


LESSONS = {
    Lesson.LEARNT: "trained {verdict}",
    Lesson.ALREADY_KNOWN: "already trained {verdict}, nothing counted again",
    Lesson.NO_CUSTOMER_MAIL: "no customer mail to learn from (a worker opened it), the filter is unchanged",
}


def _said(changed: bool, done: str) -> tuple[bool, str]:
    """A change that may have been made before: `closed`, or `closed already`."""
    return changed, done if changed else f"{done} already"


def _owner(acting: Acting, given: str) -> Worker | None:
    if given.strip().lower() == NOBODY:
        return None
    if given.strip().lower() == ME:
        return acting.required_worker("--owner me")
    return find_worker(acting.session, given)
