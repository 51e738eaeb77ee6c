"""The inbound pipeline: an ordered tuple of small steps, each a function of one Delivery.

The caller owns the transaction; a step that decides the mail needs no more work sets `done`.
Later stages (spam scoring, notifications) are added to PIPELINE, in order, here and only here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.addresses import Address
from core.groups import group_for_recipients, inbox_of
from core.helpdesk_addresses import OwnAddresses
from core.inbound import InboundMessage
from core.models import LastAction, Message, Status, Ticket, Worker
from core.settings import HelpdeskSettings
from core.threads import ThreadMatch, thread_message
from core.tickets import (
    add_recipients,
    address_row,
    audit,
    message_exists,
    open_ticket,
    record_thread_keys,
    set_status,
    store_message,
)


@dataclass
class Delivery:
    """Everything the steps know about one inbound mail while it is being filed."""

    session: Session
    message: InboundMessage
    helpdesk: HelpdeskSettings
    now: datetime
    match: ThreadMatch | None = None
    ticket: Ticket | None = None
    stored: Message | None = None
    opened: bool = False
    done: bool = False
    outcome: str = ""


Step = Callable[[Delivery], None]


def skip_duplicate(delivery: Delivery) -> None:
    """The same Message-ID delivered twice is stored once (and still acknowledged)."""
    if message_exists(delivery.session, delivery.message.message_id):
        delivery.done = True
        delivery.outcome = "duplicate"


def thread(delivery: Delivery) -> None:
    delivery.match = thread_message(delivery.session, delivery.message)
    delivery.ticket = delivery.match.ticket


def open_new_ticket(delivery: Delivery) -> None:
    """No thread matched: open a ticket in the group the mail was addressed to."""
    if delivery.ticket is not None:
        return
    session, message = delivery.session, delivery.message
    group = group_for_recipients(session, message.envelope.rcpt_tos + tuple(a.email for a in message.to),
                                 delivery.helpdesk)
    delivery.ticket = open_ticket(session, message, group, inbox_of(session, group), delivery.now)
    delivery.opened = True
    audit(session, delivery.ticket, actor=message.sender.email, action="created",
          detail=f"opened by mail {message.message_id}", now=delivery.now)


def store(delivery: Delivery) -> None:
    assert delivery.ticket is not None and delivery.match is not None
    verified = delivery.match.sender_verified
    delivery.stored = store_message(delivery.session, delivery.ticket, delivery.message,
                                    verified=verified, now=delivery.now)
    record_thread_keys(delivery.session, delivery.ticket, delivery.message, opened=delivery.opened)
    delivery.outcome = "opened" if delivery.opened else ("appended" if verified else "unverified_sender")


def update_recipients(delivery: Delivery) -> None:
    """Sender and outside To/CC join a new ticket; a trusted follow-up may bring in new CCs."""
    ticket, message, match = delivery.ticket, delivery.message, delivery.match
    assert ticket is not None and match is not None
    if not match.sender_verified:
        return
    own = OwnAddresses.from_settings(delivery.helpdesk)
    workers = set(delivery.session.scalars(select(Worker.email)))
    sender_is_worker = message.sender.email in workers
    candidates: list[Address] = [] if sender_is_worker else [message.sender]
    if delivery.opened or not sender_is_worker:
        candidates += list(message.to) + list(message.cc)
    outside = [a for a in candidates if not own.accepts(a.email) and a.email not in workers]
    add_recipients(delivery.session, ticket, outside)


def update_ticket(delivery: Delivery) -> None:
    """Who wrote last, what happened last; a recipient's reply reopens a waiting or closed ticket."""
    ticket, match, now = delivery.ticket, delivery.match, delivery.now
    assert ticket is not None and match is not None
    ticket.updated_at = now
    if delivery.opened or not match.sender_verified:
        return
    sender = address_row(delivery.session, delivery.message.sender)
    is_worker = delivery.session.scalar(select(Worker.id).where(Worker.email == sender.email)) is not None
    ticket.last_wrote_id = sender.id
    ticket.last_action = LastAction.WORKER_REPLIED if is_worker else LastAction.RECIPIENT_REPLIED
    if not is_worker and ticket.status in (Status.WAITING, Status.CLOSED):
        set_status(delivery.session, ticket, Status.OPEN, actor=sender.email,
                   reason="recipient replied", now=now)


PIPELINE: tuple[Step, ...] = (
    skip_duplicate,
    thread,
    open_new_ticket,
    store,
    update_recipients,
    update_ticket,
)


def run_pipeline(delivery: Delivery, steps: tuple[Step, ...] = PIPELINE) -> Delivery:
    """Run the steps in order until one says the mail is done."""
    for step in steps:
        step(delivery)
        if delivery.done:
            break
    return delivery
