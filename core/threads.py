"""The one place that decides which ticket an inbound mail belongs to, and whether to trust its sender.

Order, after django-helpdesk and RT: the mail's own Message-ID (a later mail of its thread may have
arrived first), then In-Reply-To and References, then a mask in the subject. A sender who is not a
recipient or worker is trusted only when the mail answers a Message-ID the helpdesk itself sent to
that ticket: those are unguessable, so answering one proves the sender saw our mail. Anyone can
quote a mask, so a mask alone never makes a stranger a recipient.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session

from core.inbound import InboundMessage
from core.masks import masks_in_subject
from core.models import AddressRow, KeyOrigin, ThreadKey, Ticket, TicketRecipient, Worker


class MatchedBy(str, enum.Enum):
    OWN_ID = "own_message_id"
    SENT_ID = "helpdesk_message_id"
    REFERENCE = "reference"
    MASK = "subject_mask"
    NEW = "new"


@dataclass(frozen=True)
class ThreadMatch:
    """The decision: which ticket (None for a new one), how it was found, what the sender may do."""

    ticket: Ticket | None
    matched_by: MatchedBy
    sender_is_participant: bool = False

    @property
    def proves_sender(self) -> bool:
        return self.matched_by is MatchedBy.SENT_ID

    @property
    def sender_verified(self) -> bool:
        return self.ticket is None or self.sender_is_participant or self.proves_sender


def thread_message(session: Session, message: InboundMessage) -> ThreadMatch:
    """Find the ticket this mail continues, or decide it opens a new one."""
    sender = message.sender.email
    own = session.get(ThreadKey, message.message_id)
    if own is not None and own.origin is KeyOrigin.REFERENCED:
        return _match(session, own.ticket_id, MatchedBy.OWN_ID, sender)
    for key in _keys_in_order(session, message.thread_ids):
        participant = is_participant(session, key.ticket_id, sender)
        if key.origin is KeyOrigin.REFERENCED and not participant:
            continue  # an id we only saw mentioned is no proof: a stranger may have planted it
        by = MatchedBy.SENT_ID if key.origin is KeyOrigin.SENT else MatchedBy.REFERENCE
        return _match(session, key.ticket_id, by, sender, participant)
    for mask in masks_in_subject(message.subject):
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).first()
        if ticket is not None:
            return ThreadMatch(ticket, MatchedBy.MASK, is_participant(session, ticket.id, sender))
    return ThreadMatch(None, MatchedBy.NEW)


def _keys_in_order(session: Session, ids: tuple[str, ...]) -> list[ThreadKey]:
    if not ids:
        return []
    found = {k.message_id: k for k in session.scalars(_KEYS_WITH_IDS, {"ids": ids})}
    return [found[i] for i in ids if i in found]


def _match(session: Session, ticket_id: int, by: MatchedBy, sender: str,
           participant: bool | None = None) -> ThreadMatch:
    if participant is None:
        participant = is_participant(session, ticket_id, sender)
    return ThreadMatch(session.get(Ticket, ticket_id), by, participant)


def is_participant(session: Session, ticket_id: int, email: str) -> bool:
    """A recipient of the ticket or any worker."""
    return bool(session.scalar(_PARTICIPANT, {"ticket_id": ticket_id, "email": email}))


# Built once, not per mail: building a statement costs about as much as running it.
_KEYS_WITH_IDS = select(ThreadKey).where(ThreadKey.message_id.in_(bindparam("ids", expanding=True)))
_PARTICIPANT = select(
    exists().where(TicketRecipient.ticket_id == bindparam("ticket_id"),
                   TicketRecipient.address_id == AddressRow.id, AddressRow.email == bindparam("email"))
    | exists().where(Worker.email == bindparam("email")))
