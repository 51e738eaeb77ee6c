"""Mail the helpdesk writes on its own: worker notifications, acknowledgements, close notices, errors.

Each is built fresh (core.compose) and queued in the one outbox, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.compose import Outgoing, mailbox, one_line, render
from core.inbound import InboundMessage
from core.masks import reply_subject, subject_with_mask
from core.models import AddressRow, AutoReplySent, Group, Message, MessageKind, Ticket, Worker
from core.personal_mail import Person, customer_references, private_addresses, send_to_each
from core.reply_text import clean_worker_text
from core.settings import Settings
from core.staff import group_members
from core.upsert import insert_ignore

MAX_REFERENCES = 20
SHORT_SUBJECT = 60  # what an acknowledgement quotes of a subject: enough to recognise, too little to advertise


@dataclass(frozen=True)
class Outbound:
    """What every mail the helpdesk writes needs to know of the installation."""

    hostname: str
    auto_reply_window: timedelta
    hourly_cap: int = 20  # mails about one ticket to one address per hour (core.personal_mail)

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        return cls(settings.smtp.hostname, timedelta(seconds=settings.auto_reply.window_seconds),
                   settings.helpdesk.max_mails_per_hour)

    def send_to_each(self, session: Session, ticket: Ticket, group: Group, people: Sequence[Person],
                     compose: Callable[[Person], Outgoing], purpose: str, now: datetime) -> list[str]:
        return send_to_each(session, ticket, group, people, compose, purpose=purpose, hostname=self.hostname,
                            cap=self.hourly_cap, now=now)


def thread_ids(session: Session, ticket: Ticket) -> list[str]:
    """Ids of the ticket's conversation in order, for References: clients thread by them."""
    ids = session.scalars(select(Message.message_id).where(Message.ticket_id == ticket.id,
                                                           Message.kind == MessageKind.INBOUND,
                                                           Message.unverified_sender.is_(False))
                          .order_by(Message.id))
    return list(ids)[-MAX_REFERENCES:]


def notify_workers(session: Session, out: Outbound, ticket: Ticket, message: InboundMessage, now: datetime, *,
                   unproven: bool = False) -> bool:
    """Forward a mail to the ticket's owner, or else to its group's workers: a copy each, with their own token."""
    group = session.get(Group, ticket.group_id)
    assert group is not None
    owner = session.get(Worker, ticket.owner_id) if ticket.owner_id else None
    workers = [owner.email] if owner else group_members(session, group.id)
    workers = [w for w in workers if w != message.sender.email]
    if not workers:
        return False
    sender_name = one_line(message.sender.name or message.sender.email)[:100]
    body = render("worker_notification", sender=f"{sender_name} <{message.sender.email}>", mask=ticket.mask,
                  group=group.name, text=message.text, attachments=[a.filename for a in message.attachments],
                  unproven=unproven)
    references = thread_ids(session, ticket)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, f"{sender_name} via {group.name}"),
                        to=[mailbox(person.email)], subject=subject_with_mask(message.subject or ticket.subject,
                                                                              ticket.mask),
                        body=body, in_reply_to=message.message_id, references=references,
                        attachments=message.attachments)

    return bool(out.send_to_each(session, ticket, group, [Person(w) for w in workers], compose, "notification", now))


def notify_merge(session: Session, out: Outbound, survivor: Ticket, merged: Sequence[str], now: datetime) -> bool:
    """Tell the group's workers, once, that tickets turned out to be one conversation."""
    group = session.get(Group, survivor.group_id)
    assert group is not None
    workers = group_members(session, group.id)
    if not workers or not merged:
        return False
    body = render("merged", mask=survivor.mask, merged=merged, group=group.name)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(person.email)],
                        subject=subject_with_mask(f"Merged: {short_subject(survivor.subject)}", survivor.mask),
                        body=body, auto_submitted="auto-generated")

    return bool(out.send_to_each(session, survivor, group, [Person(w) for w in workers], compose, "merged", now))


def send_auto_reply(session: Session, out: Outbound, ticket: Ticket, message: InboundMessage, now: datetime) -> bool:
    """Acknowledge a new ticket to the mail's return path (RFC 3834), at most once per address per window.

    Never to the From header (anyone can write a third party's address there), never to an empty
    return path, and quoting nothing but a short subject: an acknowledgement carries no one's ads.
    """
    group = session.get(Group, ticket.group_id)
    assert group is not None
    to = message.return_path
    if not group.auto_reply or not to or not _claim_auto_reply(session, to, now, out.auto_reply_window):
        return False
    body = render("auto_reply", group=group.name, mask=ticket.mask)
    subject = subject_with_mask(reply_subject(short_subject(ticket.subject)), ticket.mask)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(person.email)], subject=subject,
                        body=body, in_reply_to=message.message_id, references=[message.message_id],
                        auto_submitted="auto-replied")

    return bool(out.send_to_each(session, ticket, group, [Person(to)], compose, "auto_reply", now))


def short_subject(subject: str) -> str:
    """At most SHORT_SUBJECT characters of a subject, on one line."""
    flat = one_line(subject)
    return flat if len(flat) <= SHORT_SUBJECT else flat[:SHORT_SUBJECT - 1].rstrip() + "…"


def _claim_auto_reply(session: Session, email: str, now: datetime, window: timedelta) -> bool:
    """True (and remembered) when this sender had no auto-reply within the window."""
    if insert_ignore(session, AutoReplySent.__table__, {"email": email, "sent_at": now}):
        return True
    last = session.get(AutoReplySent, email, populate_existing=True, with_for_update=True)
    if last is None or now - last.sent_at >= window:
        if last is not None:
            last.sent_at = now
        return True
    return False


def send_command_error(session: Session, out: Outbound, ticket: Ticket, worker: Worker, problems: tuple[str, ...],
                       in_reply_to: str, now: datetime, *, relayed: bool = False) -> None:
    """Tell a worker, once, why their mail was not relayed (or, `relayed`, what was left out of it)."""
    group = session.get(Group, ticket.group_id)
    assert group is not None
    prefix = "Relayed with changes" if relayed else "Not relayed"
    body = render("command_error", mask=ticket.mask, problems=problems, relayed=relayed)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(worker.email, worker.name)],
                        subject=subject_with_mask(f"{prefix}: {short_subject(ticket.subject)}", ticket.mask),
                        body=body, in_reply_to=in_reply_to, references=[in_reply_to], auto_submitted="auto-replied")

    out.send_to_each(session, ticket, group, [Person(worker.email, worker.name)], compose, "command_error", now)


def ticket_recipients(session: Session, ticket: Ticket) -> list[AddressRow]:
    """The ticket's recipients as stored now (one may have joined earlier in this transaction)."""
    session.refresh(ticket, ["recipients"])
    return list(ticket.recipients)


def send_close_notice(session: Session, out: Outbound, ticket: Ticket, now: datetime) -> bool:
    """When the group asks for it: mail the recipients that the ticket closed, with the transcript."""
    group = session.get(Group, ticket.group_id)
    assert group is not None
    recipients = ticket_recipients(session, ticket)
    if not group.close_notice or not recipients:
        return False
    private = private_addresses(session)
    body = render("close_notice", mask=ticket.mask, subject=private.redact(ticket.subject), group=group.name,
                  transcript=customer_transcript(session, ticket, group))
    people = [Person(r.email, r.name) for r in recipients]
    everyone = [mailbox(p.email, p.name) for p in people]

    def compose(person: Person) -> Outgoing:
        references = customer_references(session, ticket, person.email)
        return Outgoing(sender=mailbox(group.address, group.name), to=everyone,
                        subject=subject_with_mask(f"Closed: {private.redact(ticket.subject)}", ticket.mask),
                        body=body,
                        in_reply_to=references[-1] if references else None, references=references)

    return bool(out.send_to_each(session, ticket, group, people, compose, "close_notice", now))


def customer_transcript(session: Session, ticket: Ticket, group: Group) -> list[dict[str, str]]:
    """The conversation as customers may read it: proven mail and replies, no worker's address or signature."""
    private = private_addresses(session)
    rows = session.execute(select(Message, AddressRow.name, AddressRow.email, Worker.name)
                           .join(AddressRow, AddressRow.id == Message.sender_id)
                           .outerjoin(Worker, Worker.id == Message.author_worker_id)
                           .where(Message.ticket_id == ticket.id,
                                  Message.kind.in_([MessageKind.INBOUND, MessageKind.REPLY]),
                                  Message.unverified_sender.is_(False))
                           .order_by(Message.id)).all()
    transcript = []
    for m, name, email, worker_name in rows:
        by_worker = m.kind is MessageKind.REPLY or email in private.emails
        text = clean_worker_text(m.text, private.emails) if by_worker else private.redact(m.text)
        author = (worker_name or group.name) if by_worker else (name or email)
        transcript.append({"date": (m.date or m.received_at).strftime("%Y-%m-%d %H:%M"),
                           "author": private.redact(one_line(author)), "text": text})
    return transcript
