"""Mail the helpdesk writes on its own: worker notifications, acknowledgements, close notices, errors.

Each is built fresh (core.compose) and queued in the one outbox, in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.compose import Outgoing, mailbox, render
from core.inbound import InboundMessage
from core.masks import reply_subject, subject_with_mask
from core.models import AddressRow, AutoReplySent, Group, Message, MessageKind, Ticket, Worker
from core.outbox import queue_mail
from core.settings import Settings
from core.staff import group_members
from core.upsert import insert_ignore

MAX_REFERENCES = 20


@dataclass(frozen=True)
class Outbound:
    """What every mail the helpdesk writes needs to know of the installation."""

    hostname: str
    auto_reply_window: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        return cls(settings.smtp.hostname, timedelta(seconds=settings.auto_reply.window_seconds))


def thread_ids(session: Session, ticket: Ticket) -> list[str]:
    """Ids of the ticket's conversation in order, for References: clients thread by them."""
    ids = session.scalars(select(Message.message_id).where(Message.ticket_id == ticket.id,
                                                           Message.kind == MessageKind.INBOUND,
                                                           Message.unverified_sender.is_(False))
                          .order_by(Message.id))
    return list(ids)[-MAX_REFERENCES:]


def notify_workers(session: Session, out: Outbound, ticket: Ticket, message: InboundMessage, now: datetime) -> bool:
    """Forward a recipient's mail to the ticket's owner, or else to its group's workers."""
    group = session.get(Group, ticket.group_id)
    assert group is not None
    owner = session.get(Worker, ticket.owner_id) if ticket.owner_id else None
    workers = [owner.email] if owner else group_members(session, group.id)
    workers = [w for w in workers if w != message.sender.email]
    if not workers:
        return False
    sender_name = message.sender.name or message.sender.email
    body = render("worker_notification", sender=f"{sender_name} <{message.sender.email}>", mask=ticket.mask,
                  group=group.name, text=message.text, attachments=[a.filename for a in message.attachments])
    references = thread_ids(session, ticket)
    mail = Outgoing(sender=mailbox(group.address, f"{sender_name} via {group.name}"),
                    to=[mailbox(w) for w in workers], reply_to=mailbox(group.address, group.name),
                    subject=subject_with_mask(message.subject or ticket.subject, ticket.mask), body=body,
                    in_reply_to=message.message_id, references=references,
                    attachments=message.attachments).build(out.hostname, now)
    queue_mail(session, mail, purpose="notification", mail_from=group.address, rcpt_tos=workers,
               ticket=ticket, now=now)
    return True


def send_auto_reply(session: Session, out: Outbound, ticket: Ticket, message: InboundMessage, now: datetime) -> bool:
    """Acknowledge a new ticket, at most once per sender per window (two robots cannot loop)."""
    group = session.get(Group, ticket.group_id)
    assert group is not None
    if not group.auto_reply or not _claim_auto_reply(session, message.sender.email, now, out.auto_reply_window):
        return False
    body = render("auto_reply", name=message.sender.name, group=group.name, mask=ticket.mask)
    mail = Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(message.sender.email, message.sender.name)],
                    subject=subject_with_mask(reply_subject(ticket.subject), ticket.mask), body=body,
                    in_reply_to=message.message_id, references=[message.message_id],
                    auto_submitted="auto-replied").build(out.hostname, now)
    queue_mail(session, mail, purpose="auto_reply", mail_from=group.address, rcpt_tos=[message.sender.email],
               ticket=ticket, now=now)
    return True


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
                       in_reply_to: str, now: datetime) -> None:
    """Tell a worker, once, why their mail was not relayed."""
    group = session.get(Group, ticket.group_id)
    assert group is not None
    mail = Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(worker.email, worker.name)],
                    subject=subject_with_mask(f"Not relayed: {ticket.subject}", ticket.mask),
                    body=render("command_error", mask=ticket.mask, problems=problems),
                    in_reply_to=in_reply_to, references=[in_reply_to],
                    auto_submitted="auto-replied").build(out.hostname, now)
    queue_mail(session, mail, purpose="command_error", mail_from=group.address, rcpt_tos=[worker.email],
               ticket=ticket, now=now)


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
    rows = session.execute(select(Message, AddressRow.name, AddressRow.email, Worker.name)
                           .join(AddressRow, AddressRow.id == Message.sender_id)
                           .outerjoin(Worker, Worker.id == Message.author_worker_id)
                           .where(Message.ticket_id == ticket.id,
                                  Message.kind.in_([MessageKind.INBOUND, MessageKind.REPLY]),
                                  Message.unverified_sender.is_(False))
                           .order_by(Message.id)).all()
    transcript = [{"date": (m.date or m.received_at).strftime("%Y-%m-%d %H:%M"),
                   "author": worker_name or name or email if m.kind is MessageKind.INBOUND else worker_name or group.name,
                   "text": m.text} for m, name, email, worker_name in rows]
    mail = Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(r.email, r.name) for r in recipients],
                    subject=subject_with_mask(f"Closed: {ticket.subject}", ticket.mask),
                    body=render("close_notice", mask=ticket.mask, subject=ticket.subject, group=group.name,
                                transcript=transcript),
                    references=thread_ids(session, ticket)).build(out.hostname, now)
    queue_mail(session, mail, purpose="close_notice", mail_from=group.address, rcpt_tos=[r.email for r in recipients],
               ticket=ticket, now=now)
    return True
