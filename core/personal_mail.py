"""Mail to people about a ticket: one copy each, with that person's reply token, under the hourly cap.

A copy per person is what lets an answer prove its sender: the Reply-To token and the Message-ID
of Jane's copy were sent to Jane alone (core.threads). The cap is the last guard against loops:
however two robots manage to answer each other, at most `max_mails_per_hour` mails about one
ticket go to one address in any hour; the rest are not queued, and the first one held is logged,
audited and told to the workers, once per hour.

Every mail queued here passes the installation's outgoing filters and then, last, the guard that
holds a mail which would show a worker's address to anyone but a worker (`hold_private_addresses`):
no filter can put back what the guard removed, because none runs after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from core.compose import SHIPPED, Outgoing, Templates, mailbox
from core.db import cached
from core.masks import subject_with_mask
from core.models import AddressRow, AuditEntry, Group, Message, MessageKind, OutboxItem, SentRecipient, Ticket
from core.mail_purpose import MailPurpose
from core.outbox import OutgoingFilter, OutgoingMail, queue_mail
from core.privacy import PrivateAddresses
from core.reply_tokens import reply_address
from core.staff import group_members, worker_emails
from core.tickets import audit

log = logging.getLogger(__name__)

CAP_WINDOW = timedelta(hours=1)
CAP_ACTION = "mail_cap"
MAX_REFERENCES = 20


@dataclass(frozen=True)
class Person:
    """Who gets one personal copy: the address it goes to, and the name it is addressed by."""

    email: str
    name: str = ""


def send_to_each(session: Session, ticket: Ticket, group: Group, people: Sequence[Person],
                 compose: Callable[[Person], Outgoing], *, purpose: MailPurpose, hostname: str, cap: int,
                 now: datetime, filters: Sequence[OutgoingFilter] = (), templates: Templates = SHIPPED) -> list[str]:
    """Queue one copy per person, Reply-To their own token; returns the addresses it went to."""
    sent = []
    for person in people:
        if not within_cap(session, ticket, group, person.email, cap=cap, hostname=hostname, now=now,
                          filters=filters, templates=templates):
            continue
        token = reply_address(session, group.address, ticket.mask, person.email)
        content = replace(compose(person), reply_to=mailbox(token, group.name))
        mail = OutgoingMail(content, purpose, group.address, (person.email,), ticket)
        if queue_guarded(session, mail, filters, hostname, now) is not None:
            sent.append(person.email)
    return sent


def queue_guarded(session: Session, mail: OutgoingMail, filters: Sequence[OutgoingFilter], hostname: str, now: datetime,
           counted: bool = True) -> OutboxItem | None:
    """The one chain every mail the helpdesk writes passes: the given filters, then the worker-address guard."""
    return queue_mail(session, mail, filters=(*filters, hold_private_addresses), hostname=hostname, now=now,
                      counted=counted)


def private_addresses(session: Session) -> PrivateAddresses:
    """The workers' addresses in every written form, compiled once per transaction."""
    return cached(session, PrivateAddresses, lambda: PrivateAddresses.of(worker_emails(session)))


def hold_private_addresses(session: Session, mail: OutgoingMail, now: datetime) -> OutgoingMail | None:
    """The last filter: a mail that would still show a worker's address to someone else is held, not sent.

    It reads what the mail says before any encoding (core.compose.Outgoing.contents), so a header's
    encoded words or a part's base64 cannot hide an address from it. Mail to workers alone passes.
    """
    private = private_addresses(session)
    if all(email in private.emails for email in mail.rcpt_tos):
        return mail
    if not any(private.found_in(piece) for piece in mail.content.contents()):
        return mail
    recipients = ", ".join(mail.rcpt_tos)
    mask = mail.ticket.mask if mail.ticket else "no ticket"
    log.error("held a %s about %s to %s: it would show a worker's address", mail.purpose, mask, recipients)
    audit(session, mail.ticket, actor="postdesk", action="held_private_address",
          detail=f"{mail.purpose} to {recipients} would show a worker's address; not sent", now=now)
    return None


def within_cap(session: Session, ticket: Ticket, group: Group, email: str, *, cap: int, hostname: str,
               now: datetime, filters: Sequence[OutgoingFilter] = (), templates: Templates = SHIPPED) -> bool:
    """Whether one more mail about this ticket may go to this address this hour; says so once when not."""
    count = session.scalar(_SENT_SINCE, {"ticket_id": ticket.id, "email": email, "since": now - CAP_WINDOW}) or 0
    if count < cap:
        return True
    if session.scalar(_CAP_REPORTED, {"ticket_id": ticket.id, "detail": email, "since": now - CAP_WINDOW}) is None:
        log.warning("mail cap: %s mails about %s to %s within an hour; holding the rest (a loop?)",
                    count, ticket.mask, email)
        audit(session, ticket, actor="postdesk", action=CAP_ACTION, detail=email, now=now)
        _tell_workers(session, ticket, group, email, count, hostname, now, filters, templates)
    return False


def _tell_workers(session: Session, ticket: Ticket, group: Group, email: str, count: int, hostname: str,
                  now: datetime, filters: Sequence[OutgoingFilter], templates: Templates) -> None:
    """Once per hour and address: the workers learn that mail is being held (outside the cap: it is the alarm)."""
    workers = group_members(session, group.id)
    if not workers:
        return
    body = templates.render("mail_cap", mask=ticket.mask, address=email, count=count, group=group.name)
    mail = Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(w) for w in workers],
                    subject=subject_with_mask(f"Mail held: {ticket.subject[:60]}", ticket.mask), body=body,
                    auto_submitted="auto-generated")
    queue_guarded(session, OutgoingMail(mail, MailPurpose.MAIL_CAP, group.address, tuple(workers), ticket), filters,
           hostname, now, counted=False)


def customer_references(session: Session, ticket: Ticket, email: str) -> list[str]:
    """The ids a customer's copy refers to: the helpdesk's own mail to them, and their own mail, in order.

    Never another person's Message-ID: a worker's would carry the worker's domain.
    """
    ours = session.execute(select(SentRecipient.sent_at, SentRecipient.message_id)
                           .where(SentRecipient.ticket_id == ticket.id, SentRecipient.email == email)).all()
    theirs = session.execute(select(Message.received_at, Message.message_id)
                             .join(AddressRow, AddressRow.id == Message.sender_id)
                             .where(Message.ticket_id == ticket.id, AddressRow.email == email,
                                    Message.kind == MessageKind.INBOUND,
                                    Message.unverified_sender.is_(False))).all()
    # at the same moment, their mail came first: the helpdesk's mail of that moment answers it
    ordered = sorted([(at, 0, i) for at, i in theirs] + [(at, 1, i) for at, i in ours])
    return [message_id for _, _, message_id in ordered][-MAX_REFERENCES:]


# Built once: asked for every copy.
_SENT_SINCE = select(func.count()).select_from(SentRecipient).where(
    SentRecipient.ticket_id == bindparam("ticket_id"), SentRecipient.email == bindparam("email"),
    SentRecipient.sent_at > bindparam("since"))
_CAP_REPORTED = select(AuditEntry.id).where(AuditEntry.ticket_id == bindparam("ticket_id"),
                                            AuditEntry.action == CAP_ACTION, AuditEntry.detail == bindparam("detail"),
                                            AuditEntry.at > bindparam("since")).limit(1)
