"""Mail the helpdesk writes on its own: worker notifications, acknowledgements, close notices, errors.

Each is built fresh (core.compose) and queued in the one outbox, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.compose import SHIPPED, Outgoing, Templates, mailbox, one_line
from core.inbound import InboundMessage
from core.mail_purpose import MailPurpose
from core.masks import reply_subject, subject_with_mask
from core.models import AddressRow, AutoReplySent, Group, Message, MessageKind, Ticket, Worker
from core.outbox import OutgoingFilter, OutgoingMail
from core.personal_mail import Person, customer_references, queue_guarded, send_to_each
from core.settings import Settings, WebSettings
from core.staff import group_members
from core.transcript import read_transcript
from core.transcripts import seal_transcript
from core.upsert import insert_ignore

MAX_REFERENCES = 20
SHORT_SUBJECT = 60  # what an acknowledgement quotes of a subject: enough to recognise, too little to advertise


@dataclass(frozen=True)
class Outbound:
    """What every mail the helpdesk writes needs to know of the installation."""

    hostname: str
    auto_reply_window: timedelta
    hourly_cap: int = 20  # mails about one ticket to one address per hour (core.personal_mail)
    filters: tuple[OutgoingFilter, ...] = ()  # every mail passes these, in order, then the worker-address guard
    templates: Templates = SHIPPED  # [templates] folder first; each group's language
    base_url: str = WebSettings.base_url  # `[web] base_url`: where a link in mail (a transcript's) points

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        """The installation's outbound; the one place its outgoing filters (a footer, signing) are to be named."""
        return cls(settings.smtp.hostname, timedelta(seconds=settings.auto_reply.window_seconds),
                   settings.helpdesk.max_mails_per_hour, templates=Templates(settings.templates.folder),
                   base_url=settings.web.base_url)

    def templates_of(self, group: Group) -> Templates:
        """The templates a group's mail is written from: in its language, where there are some."""
        return self.templates.speaking(group.language)

    def send_to_each(self, session: Session, ticket: Ticket, group: Group, people: Sequence[Person],
                     compose: Callable[[Person], Outgoing], purpose: MailPurpose, now: datetime) -> list[str]:
        """A copy per person (core.personal_mail.send_to_each) with this installation's cap and filters."""
        return send_to_each(session, ticket, group, people, compose, purpose=purpose, hostname=self.hostname,
                            cap=self.hourly_cap, now=now, filters=self.filters,
                            templates=self.templates_of(group))


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
    body = out.templates_of(group).render("worker_notification", sender=f"{sender_name} <{message.sender.email}>", mask=ticket.mask,
                  group=group.name, text=message.text, attachments=[a.filename for a in message.attachments],
                  unproven=unproven)
    references = thread_ids(session, ticket)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, f"{sender_name} via {group.name}"),
                        to=[mailbox(person.email)], subject=subject_with_mask(message.subject or ticket.subject,
                                                                              ticket.mask),
                        body=body, in_reply_to=message.message_id, references=references,
                        attachments=message.attachments)

    return bool(out.send_to_each(session, ticket, group, [Person(w) for w in workers], compose, MailPurpose.WORKER_NOTIFICATION, now))


def notify_merge(session: Session, out: Outbound, survivor: Ticket, merged: Sequence[str], now: datetime) -> bool:
    """Tell the group's workers, once, that tickets turned out to be one conversation."""
    group = session.get(Group, survivor.group_id)
    assert group is not None
    workers = group_members(session, group.id)
    if not workers or not merged:
        return False
    body = out.templates_of(group).render("merged", mask=survivor.mask, merged=merged, group=group.name)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(person.email)],
                        subject=subject_with_mask(f"Merged: {short_subject(survivor.subject)}", survivor.mask),
                        body=body, auto_submitted="auto-generated")

    return bool(out.send_to_each(session, survivor, group, [Person(w) for w in workers], compose, MailPurpose.MERGED, now))


def notify_reopened(session: Session, out: Outbound, ticket: Ticket, reason: str, now: datetime) -> bool:
    """A ticket the clock opened again (its due time came) is news: one mail to its owner, else to each of
    its group's workers, as a customer's mail would be; nobody would look at it otherwise."""
    group = session.get(Group, ticket.group_id)
    assert group is not None
    owner = session.get(Worker, ticket.owner_id) if ticket.owner_id else None
    workers = [owner.email] if owner else group_members(session, group.id)
    if not workers:
        return False
    body = out.templates_of(group).render("reopened", mask=ticket.mask, subject=ticket.subject, reason=reason,
                                          group=group.name)
    subject = subject_with_mask(f"Open again: {short_subject(ticket.subject)}", ticket.mask)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(person.email)], subject=subject,
                        body=body, auto_submitted="auto-generated")

    people = [Person(w) for w in workers]
    return bool(out.send_to_each(session, ticket, group, people, compose, MailPurpose.REOPENED, now))


def send_sign_in_link(session: Session, out: Outbound, group: Group, email: str, url: str, minutes: int,
                      now: datetime, *, template: str = "sign_in_link", subject: str = "") -> None:
    """The one-time link a worker (or, with the portal's template, a customer) asked for, from the group's
    address; not counted as proof of anyone."""
    body = out.templates_of(group).render(template, url=url, minutes=minutes, group=group.name)
    content = Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(email)],
                       subject=subject or f"Your sign-in link for {group.name}", body=body,
                       auto_submitted="auto-generated")
    queue_guarded(session, OutgoingMail(content, MailPurpose.SIGN_IN_LINK, group.address, (email,), None),
                  out.filters, out.hostname, now, counted=False)


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
    body = out.templates_of(group).render("auto_reply", group=group.name, mask=ticket.mask)
    subject = subject_with_mask(reply_subject(short_subject(ticket.subject)), ticket.mask)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(person.email)], subject=subject,
                        body=body, in_reply_to=message.message_id, references=[message.message_id],
                        auto_submitted="auto-replied")

    return bool(out.send_to_each(session, ticket, group, [Person(to)], compose, MailPurpose.AUTO_REPLY, now))


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
    body = out.templates_of(group).render("command_error", mask=ticket.mask, problems=problems, relayed=relayed)

    def compose(person: Person) -> Outgoing:
        return Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(worker.email, worker.name)],
                        subject=subject_with_mask(f"{prefix}: {short_subject(ticket.subject)}", ticket.mask),
                        body=body, in_reply_to=in_reply_to, references=[in_reply_to], auto_submitted="auto-replied")

    out.send_to_each(session, ticket, group, [Person(worker.email, worker.name)], compose, MailPurpose.COMMAND_ERROR, now)


def ticket_recipients(session: Session, ticket: Ticket) -> list[AddressRow]:
    """The ticket's recipients as stored now (one may have joined earlier in this transaction)."""
    session.refresh(ticket, ["recipients"])
    return list(ticket.recipients)


def send_close_notice(session: Session, out: Outbound, ticket: Ticket, now: datetime) -> bool:
    """When the group asks for it: mail the recipients that the ticket closed, with the transcript.

    A group that keeps encrypted transcripts (core.transcripts) always mails this notice, and it carries
    the transcript's link instead of the conversation (`close_notice_link`: an installation's own
    `close_notice` template, written to quote the conversation, is never used then), to the recipients
    and, as a copy, to the group's transcript address. A transcript is sealed only when someone gets
    its link: the key exists nowhere else.
    """
    group = session.get(Group, ticket.group_id)
    assert group is not None
    recipients = ticket_recipients(session, ticket)
    people = [Person(r.email, r.name) for r in recipients]
    copied = group.transcripts and group.transcript_address not in {p.email for p in people}
    log_copy = group.transcript_address if copied else ""
    if not (group.close_notice or group.transcripts) or not (people or log_copy):
        return False
    transcript = read_transcript(session, ticket)
    templates = out.templates_of(group)
    link = seal_transcript(session, transcript, out.base_url, now, templates) if group.transcripts else ""
    body = templates.render("close_notice_link" if link else "close_notice", transcript=transcript, link=link)
    subject = subject_with_mask(templates.line("close_notice_subject", subject=transcript.subject), ticket.mask)
    everyone = [mailbox(p.email, p.name) for p in people]

    def compose(person: Person) -> Outgoing:
        references = customer_references(session, ticket, person.email)
        return Outgoing(sender=mailbox(group.address, group.name), to=everyone, subject=subject, body=body,
                        in_reply_to=references[-1] if references else None, references=references)

    sent = out.send_to_each(session, ticket, group, people, compose, MailPurpose.CLOSE_NOTICE, now)
    if log_copy:  # a log, not a person of the ticket: no reply token, not counted as proof of anyone
        copy = Outgoing(sender=mailbox(group.address, group.name), to=[mailbox(log_copy)], subject=subject,
                        body=body, auto_submitted="auto-generated")
        mail = OutgoingMail(copy, MailPurpose.TRANSCRIPT_COPY, group.address, (log_copy,), ticket)
        if queue_guarded(session, mail, out.filters, out.hostname, now, counted=False) is not None:
            sent.append(log_copy)
    return bool(sent)

