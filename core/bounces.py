"""Files a delivery status notification on the ticket whose mail bounced; never opens a ticket."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.addresses import Address
from core.inbound import BounceReport, InboundMessage
from core.models import KeyOrigin, MessageKind, OutboxItem, ThreadKey, Ticket
from core.tickets import address_row, audit, store_message


def ticket_of_sent_mail(session: Session, message_ids: tuple[str, ...]) -> Ticket | None:
    """The ticket one of our own outbound mails belonged to."""
    if not message_ids:
        return None
    ticket_id = session.scalar(select(OutboxItem.ticket_id).where(OutboxItem.message_id.in_(message_ids),
                                                                 OutboxItem.ticket_id.is_not(None)))
    if ticket_id is None:
        ticket_id = session.scalar(select(ThreadKey.ticket_id).where(ThreadKey.message_id.in_(message_ids),
                                                                    ThreadKey.origin == KeyOrigin.SENT))
    return session.get(Ticket, ticket_id) if ticket_id is not None else None


def file_bounce(session: Session, message: InboundMessage, report: BounceReport, now: datetime) -> Ticket | None:
    """Attach the report to its ticket (shown, not relayed) and mark the failed recipients bouncing."""
    ticket = ticket_of_sent_mail(session, report.original_message_ids)
    if ticket is None:
        return None
    store_message(session, ticket, message, verified=True, now=now, kind=MessageKind.BOUNCE)
    for email in report.failed_recipients:
        address_row(session, Address(email)).bouncing = True
    audit(session, ticket, actor=message.sender.email, action="bounce",
          detail=f"delivery failed for {', '.join(report.failed_recipients) or 'a recipient'} "
                 f"({report.status or 'no status'})", now=now)
    return ticket
