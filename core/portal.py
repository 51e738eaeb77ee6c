"""What a customer writes in the portal takes the road of mail: one inbound mail, filed by core.pipeline.

A new ticket or a reply from the portal becomes an `InboundMessage` from the signed-in customer,
with its raw RFC 5322 bytes kept like any mail's, and runs the same pipeline as SMTP and IMAP mail:
threading keys, spam score, worker notifications, the acknowledgement, reopening a waiting ticket.
The session is the proof of who writes, as a reply token is for mail: a reply is addressed to the
customer's own reply address on that ticket (core.reply_tokens), which the pipeline already trusts,
so no second threading rule exists for the portal.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from sqlalchemy.orm import Session

from core.addresses import Address
from core.compose import mailbox, one_line
from core.errors import UsageError
from core.inbound import Envelope, InboundAttachment, InboundMessage
from core.masks import reply_subject, subject_with_mask
from core.message_ids import new_message_id
from core.models import Group, Priority, Ticket
from core.notify import Outbound
from core.pipeline import Delivery, FilingOutcome, run_pipeline
from core.reply_tokens import reply_address
from core.settings import Settings
from core.tickets import audit

PORTAL_SOURCE = "portal"
MAX_SUBJECT = 200
MAX_TEXT = 100_000  # characters; a longer "description" is an attachment


def customer_mail(sender: Address, to: str, subject: str, text: str,
                  attachments: tuple[InboundAttachment, ...], hostname: str, now: datetime) -> InboundMessage:
    """The customer's words as the mail they would have sent, raw bytes and parsed value alike."""
    if not text.strip():
        raise UsageError("write a message")
    if len(text) > MAX_TEXT:
        raise UsageError(f"a message has at most {MAX_TEXT:,} characters; attach a longer text as a file")
    mail = EmailMessage(policy=SMTP)
    mail["From"] = mailbox(sender.email, sender.name)
    mail["To"] = to
    mail["Subject"] = one_line(subject)
    mail["Date"] = format_datetime(now)
    message_id = new_message_id(hostname)
    mail["Message-ID"] = message_id
    mail["X-Postdesk-Source"] = PORTAL_SOURCE
    mail.set_content(text)
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mail.add_attachment(attachment.data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                            filename=one_line(attachment.filename) or None)
    return InboundMessage(message_id=message_id, sender=sender, subject=one_line(subject),
                          envelope=Envelope(PORTAL_SOURCE, sender.email, (to,)), raw=mail.as_bytes(),
                          to=(Address(to),), date=now, text=text, attachments=attachments,
                          return_path=sender.email)


def file_customer_mail(session: Session, settings: Settings, message: InboundMessage, now: datetime) -> Delivery:
    """Run the one pipeline on the customer's mail, in the caller's transaction."""
    return run_pipeline(Delivery(session, message, settings.helpdesk, now, Outbound.from_settings(settings),
                                 settings.spam))


def open_customer_ticket(session: Session, settings: Settings, sender: Address, group: Group, subject: str,
                         text: str, priority: Priority, attachments: tuple[InboundAttachment, ...],
                         now: datetime) -> Ticket:
    subject = subject.strip()
    if not subject:
        raise UsageError("subject is missing")
    if len(subject) > MAX_SUBJECT:
        raise UsageError(f"a subject has at most {MAX_SUBJECT} characters")
    message = customer_mail(sender, group.address, subject, text, attachments, settings.smtp.hostname, now)
    delivery = file_customer_mail(session, settings, message, now)
    if delivery.outcome is not FilingOutcome.OPENED or delivery.ticket is None:
        raise UsageError(f"the ticket could not be opened ({delivery.outcome})")  # a bug, not the customer's doing
    ticket = delivery.ticket
    if priority is not ticket.priority:
        audit(session, ticket, actor=sender.email, action="priority",
              detail=f"{ticket.priority.value} -> {priority.value} (asked in the portal)", now=now)
        ticket.priority = priority
    return ticket


def customer_reply(session: Session, settings: Settings, sender: Address, ticket: Ticket, group: Group, text: str,
                   attachments: tuple[InboundAttachment, ...], now: datetime) -> FilingOutcome:
    """The customer's answer on their ticket, addressed to their own reply address there: proven, as mail is."""
    to = reply_address(session, group.address, ticket.mask, sender.email)
    subject = subject_with_mask(reply_subject(ticket.subject), ticket.mask)
    message = customer_mail(sender, to, subject, text, attachments, settings.smtp.hostname, now)
    delivery = file_customer_mail(session, settings, message, now)
    if delivery.ticket is None or delivery.ticket.id != ticket.id or delivery.outcome is not FilingOutcome.APPENDED:
        raise UsageError(f"the reply was not filed on {ticket.mask} ({delivery.outcome})")
    return delivery.outcome
