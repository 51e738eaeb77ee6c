"""The inbound pipeline: an ordered tuple of small steps, each a function of one Delivery.

The caller owns the transaction; a step that decides the mail needs no more work sets `done`.
Every run ends with a FilingOutcome and the name of the step that decided it, for the caller to
count and log.
Later stages (spam scoring, notifications) are added to PIPELINE, in order, here and only here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from core.addresses import Address
from core.bounces import file_bounce
from core.conversation import answer_as_worker, worker_by_email
from core.worker_answer import WorkerAnswer
from core.db import cached
from core.groups import group_for_recipients, inbox_of
from core.helpdesk_addresses import own_addresses
from core.inbound import InboundMessage
from core.models import Bucket, Group, LastAction, Message, Status, Ticket
from core.settings import HelpdeskSettings, SpamSettings
from core.notify import Outbound, notify_merge, notify_workers, send_auto_reply
from core.organizations import organization_for_sender
from core.quarantine import quarantine_raw
from core.staff import worker_emails
from core.merging import merge_tickets, refresh_thread_head
from core.threads import MatchedBy, ThreadMatch, Trust, thread_message
from core.lifecycle import hold_ticket, reopen_on_recipient_mail
from core import unseen_ids
from spam.filter import is_spam, score_new_mail
from spam.scoring import SpamScore
from core.tickets import (

    add_recipients,
    address_row,
    audit,
    content_digest,
    open_ticket,
    record_thread_keys,
    store_message,
    stored_digest,
)

if TYPE_CHECKING:  # dkimpy loads only when a signature is to be checked
    from core.dkim_proof import DnsLookup


class FilingOutcome(StrEnum):
    """How the pipeline ended for one mail: the one vocabulary the runner counts and the log shows."""

    DUPLICATE = "duplicate"  # the same mail was filed before: acknowledged, stored once
    BOUNCE = "bounce"  # a delivery report, joined to the ticket of the mail that bounced
    QUARANTINED = "quarantined"  # kept for a person to look at, on no ticket
    WORKER_ANSWER = "worker_answer"  # a proven worker's answer: commands applied, text relayed
    OPENED = "opened"  # a new ticket
    APPENDED = "appended"  # a proven follow-up on a ticket
    UNVERIFIED_SENDER = "unverified_sender"  # stored on a ticket, its sender not proven


@dataclass
class Delivery:
    """Everything the steps know about one inbound mail while it is being filed."""

    session: Session
    message: InboundMessage
    helpdesk: HelpdeskSettings
    now: datetime
    outbound: Outbound
    spam: SpamSettings = field(default_factory=SpamSettings)
    dkim_dns: DnsLookup | None = None  # None: DNS itself; a lookup from helpdesk.dkim_dns_file otherwise
    spam_tokens: frozenset[str] | None = None  # the mail's spam tokens, when the parsing process made them
    spam_score: SpamScore | None = None  # a new ticket's, set as it opens
    match: ThreadMatch | None = None
    ticket: Ticket | None = None
    stored: Message | None = None
    opened: bool = False
    merged: tuple[str, ...] = ()  # masks of the tickets this mail showed to be its ticket's thread
    done: bool = False
    outcome: FilingOutcome | None = None  # None until a step decides
    decided_by: str = ""  # the name of the step that set `outcome`


Step = Callable[[Delivery], None]
log = logging.getLogger(__name__)


def skip_duplicate(delivery: Delivery) -> None:
    """The same mail delivered twice is stored once (and still acknowledged); same id and same content.

    Another mail under a Message-ID already stored (generators reuse them; a stranger may send first
    with a predictable one) is no duplicate: it is filed under a key of its own, and said in the log.
    """
    message = delivery.message
    for _ in range(2):  # the id as sent, then the key made for a reused one
        stored = stored_digest(delivery.session, message.message_id)
        if stored is False:
            delivery.message = message
            return
        digest = content_digest(message)
        if stored is None or stored == digest:
            delivery.done = True
            delivery.outcome = FilingOutcome.DUPLICATE
            return
        own_key = reused_id_key(message.message_id, digest)
        log.warning("Message-ID %s was already used by another mail; this one is filed as %s",
                    message.message_id, own_key)
        message = replace(message, message_id=own_key)


def reused_id_key(message_id: str, digest: str) -> str:
    """A key of its own for a mail whose Message-ID another mail has: the same for the same id and content."""
    unique = hashlib.sha256(f"{message_id}\0{digest}".encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"<{unique}@reused-message-id.postdesk.invalid>"


def file_bounce_report(delivery: Delivery) -> None:
    """A delivery report joins the ticket of the mail that bounced; one for mail we never sent is quarantined."""
    report = delivery.message.bounce
    if report is None:
        return
    delivery.done = True
    delivery.ticket = file_bounce(delivery.session, delivery.message, report, delivery.now)
    if delivery.ticket is not None:
        delivery.outcome = FilingOutcome.BOUNCE
        return
    quarantine_raw(delivery.session, delivery.message.raw, delivery.message.envelope, delivery.now,
                   "delivery report for mail the helpdesk did not send")
    delivery.outcome = FilingOutcome.QUARANTINED


def thread(delivery: Delivery) -> None:
    delivery.match = thread_message(delivery.session, delivery.message, delivery.dkim_dns)
    delivery.ticket = delivery.match.ticket


def merge_threads(delivery: Delivery) -> None:
    """A mail that proves several tickets one thread merges them: the oldest ticket survives (core.merging)."""
    match = delivery.match
    if match is None or match.ticket is None or not match.also:
        return
    session = delivery.session
    tickets = [match.ticket, *(t for t in (session.get(Ticket, i) for i in match.also) if t is not None)]
    survivor = min(tickets, key=lambda t: (t.created_at, t.id))
    for ticket in tickets:
        if ticket is not survivor:
            delivery.merged += (ticket.mask,)
            merge_tickets(session, survivor, ticket, reason=f"mail {delivery.message.message_id} joins their threads",
                          now=delivery.now)
    delivery.ticket = survivor
    delivery.match = replace(match, ticket=survivor, also=())
    notify_merge(session, delivery.outbound, survivor, delivery.merged, delivery.now)


def open_new_ticket(delivery: Delivery) -> None:
    """No thread matched: open a ticket in the group the mail was addressed to."""
    if delivery.ticket is not None:
        return
    session, message = delivery.session, delivery.message
    recipients = message.envelope.rcpt_tos + tuple(a.email for a in message.to)
    group = cached(session, (Group, recipients), lambda: group_for_recipients(session, recipients, delivery.helpdesk))
    inbox = cached(session, (Bucket, group.id), lambda: inbox_of(session, group))
    # scored before the ticket is written, so that the score is written with it, not updated after
    delivery.spam_score = score_new_mail(session, message, delivery.spam, delivery.spam_tokens)
    delivery.ticket = open_ticket(session, message, group, inbox, delivery.now,
                                  organization_id=organization_for_sender(session, message.sender.email),
                                  spam_score=delivery.spam_score.score,
                                  interesting_words=delivery.spam_score.words_json())
    delivery.opened = True
    audit(session, delivery.ticket, actor=message.sender.email, action="created",
          detail=f"opened by mail {message.message_id}", now=delivery.now)
    if delivery.match is not None and delivery.match.quoted_mask:
        audit(session, delivery.ticket, actor="postdesk", action="quoted_mask",
              detail=f"quotes {delivery.match.quoted_mask} but nothing proves its sender belongs there: not joined",
              now=delivery.now)


def answer_worker(delivery: Delivery) -> None:
    """A proven worker's mail on a ticket is an answer: commands applied, text relayed (core.conversation).

    Mail from a worker's address without proof is no answer: it is filed like a customer's, flagged.
    """
    if delivery.opened or delivery.ticket is None or delivery.match is None or delivery.message.envelope.silent:
        return  # an imported worker mail is history: filed, never acted on again
    if delivery.match.trust is not Trust.PROVEN or delivery.message.sender.email not in worker_emails(delivery.session):
        return
    worker = worker_by_email(delivery.session, delivery.message.sender.email)
    if worker is None:
        return
    delivery.stored = answer_as_worker(delivery.session, delivery.outbound, delivery.ticket, worker,
                                       WorkerAnswer.by_mail(delivery.message), delivery.now)
    record_thread_keys(delivery.session, delivery.ticket, delivery.message, opened=False, trusted=True)
    delivery.done = True
    delivery.outcome = FilingOutcome.WORKER_ANSWER


def store(delivery: Delivery) -> None:
    assert delivery.ticket is not None and delivery.match is not None
    verified = delivery.match.sender_verified
    delivery.stored = store_message(delivery.session, delivery.ticket, delivery.message,
                                    verified=verified, now=delivery.now)
    record_thread_keys(delivery.session, delivery.ticket, delivery.message, opened=delivery.opened, trusted=verified)
    delivery.outcome = (FilingOutcome.OPENED if delivery.opened
                        else FilingOutcome.APPENDED if verified else FilingOutcome.UNVERIFIED_SENDER)


def mend_thread_head(delivery: Delivery) -> None:
    """A parent that arrived late, or a merge, may have brought the thread's earliest mail: subject and first writer."""
    match = delivery.match
    if delivery.ticket is not None and match is not None and (match.matched_by is MatchedBy.OWN_ID or delivery.merged):
        refresh_thread_head(delivery.session, delivery.ticket)


def update_recipients(delivery: Delivery) -> None:
    """Sender and outside To/CC join a new ticket; a proven follow-up may bring in new CCs, at most max_new_recipients.

    Mail that came through a mailing list brings in only the person who wrote it: a worker's reply
    must never go to the list.
    """
    ticket, message, match = delivery.ticket, delivery.message, delivery.match
    assert ticket is not None and match is not None
    if not match.sender_verified:
        return
    own = own_addresses(delivery.helpdesk)
    workers = worker_emails(delivery.session)
    sender_is_worker = message.sender.email in workers
    candidates: list[Address] = [] if sender_is_worker else [message.sender]
    if (delivery.opened or not sender_is_worker) and not message.mailing_list:
        candidates += list(message.to) + list(message.cc)  # through a list: the writer, never the list
    private = set(workers) | set(message.list_addresses)
    outside = [a for a in candidates if not own.accepts(a.email) and a.email not in private]
    add_recipients(delivery.session, ticket, _within_limit(delivery, outside))


def _within_limit(delivery: Delivery, addresses: list[Address]) -> list[Address]:
    """The first max_new_recipients not yet on the ticket; the rest are audited, not added."""
    assert delivery.ticket is not None
    known = set() if delivery.opened else {r.email for r in delivery.ticket.recipients}  # a new ticket has none
    new = [a for a in dict.fromkeys(addresses) if a.email not in known]
    limit = delivery.helpdesk.max_new_recipients
    if len(new) > limit:
        audit(delivery.session, delivery.ticket, actor="postdesk", action="recipients_limited",
              detail=f"{len(new)} new addresses in {delivery.message.message_id}; the first {limit} added",
              now=delivery.now)
    return new[:limit]


def update_ticket(delivery: Delivery) -> None:
    """Who wrote last, what happened last; a recipient's reply reopens a waiting or closed ticket."""
    ticket, match, now = delivery.ticket, delivery.match, delivery.now
    assert ticket is not None and match is not None
    if ticket.status.set_aside:
        return  # mail to a deleted or held ticket is kept, but is no activity: the purge counts from the deletion
    if ticket.updated_at != now:  # a new ticket has it: an unchanged value still costs its flush
        ticket.updated_at = now
    if delivery.opened or not match.sender_verified:
        return
    sender = address_row(delivery.session, delivery.message.sender)
    ticket.last_wrote_id = sender.id
    ticket.last_action = LastAction.RECIPIENT_REPLIED  # a worker's mail took answer_worker's path
    reopen_on_recipient_mail(delivery.session, ticket, actor=sender.email, now=now)


def hold_spam(delivery: Delivery) -> None:
    """A new ticket scored above the threshold as it opened is held as spam, so `notify` stays silent."""
    ticket, result = delivery.ticket, delivery.spam_score
    if not delivery.opened or ticket is None or result is None:
        return
    if is_spam(result, delivery.spam):
        hold_ticket(delivery.session, ticket, result.score, now=delivery.now)


def notify(delivery: Delivery) -> None:
    """Workers hear of a recipient's mail (flagged when unproven); a new ticket is acknowledged. Never for robots."""
    message, ticket, match = delivery.message, delivery.ticket, delivery.match
    assert ticket is not None and match is not None
    if message.envelope.silent:
        return  # `postdesk import` without --notify: old mail writes to no one
    robot = message.is_automated or own_addresses(delivery.helpdesk).accepts(message.sender.email)
    heard = match.sender_verified or match.trust is Trust.CLAIMED or delivery.opened
    if robot or not heard or ticket.status.set_aside:
        return
    notify_workers(delivery.session, delivery.outbound, ticket, message, delivery.now,
                   unproven=not match.sender_verified)
    if delivery.opened:
        send_auto_reply(delivery.session, delivery.outbound, ticket, message, delivery.now)


PIPELINE: tuple[Step, ...] = (
    skip_duplicate,
    file_bounce_report,
    thread,
    merge_threads,
    open_new_ticket,
    answer_worker,
    store,
    mend_thread_head,
    update_recipients,
    update_ticket,
    hold_spam,
    notify,
)


def look_ahead(session: Session, messages: Sequence[InboundMessage]) -> None:
    """Before a batch is filed in one transaction: one query finds which of its ids no table holds yet,
    so threading asks no more about them (core.unseen_ids)."""
    unseen_ids.look_ahead(session, (i for m in messages for i in (m.message_id, *m.thread_ids)))


def run_pipeline(delivery: Delivery, steps: tuple[Step, ...] = PIPELINE) -> Delivery:
    """Run the steps in order until one says the mail is done; remembers which step set the outcome."""
    for step in steps:
        before = delivery.outcome
        step(delivery)
        if delivery.outcome is not before:
            delivery.decided_by = step.__name__
        if delivery.done:
            break
    return delivery
