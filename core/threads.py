"""The one place that decides which ticket an inbound mail belongs to, and what its sender has proven.

Nothing in a mail's headers proves who sent it: anyone can type a From line, quote a mask, or copy
a Message-ID. A sender is PROVEN only by what only the real person could have (`sender_trust`):

1. a reply token made for that very address on that ticket (core.reply_tokens), found among the
   mail's recipients: the Reply-To of every mail the helpdesk sends to a person;
2. an answer to a Message-ID the helpdesk sent to that very address (sent_recipients);
3. a DKIM signature aligned with the sender's domain that verifies (core.dkim_proof);
4. for the parent of a thread that arrived after its reply: the mail's own Message-ID was
   referenced by a trusted mail of the ticket whose sender this mail was addressed to or came from
   (that sender could only know the id by receiving this mail), so the thread stays whole whatever
   the arrival order.

Which ticket, in order: a reply token; the mail's own Message-ID (rule 4); In-Reply-To and
References (an id we sent or received links the ticket even without proof, since it is hard to
guess; an id merely referenced there links only a recipient); then a mask in the subject. A mask
is trivial to quote, so it joins a ticket only for a proven sender or one of the ticket's
recipients (flagged: they know the mask anyway); anyone else's mail opens a ticket of its own,
acknowledged like any new mail, so a stranger cannot even learn whether the mask exists. A new
ticket's mail from a worker's address needs proof as well (DKIM), or it is flagged.

What a sender may do follows from the trust: PROVEN mail is a worker's answer (commands obeyed,
text relayed) or a recipient's reply (reopens, may bring in new recipients). CLAIMED (the From is
a recipient, nothing proves it) and NONE mail is kept on the ticket, shown flagged, never obeyed.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.inbound import InboundMessage
from core.masks import masks_in_subject
from core.models import AddressRow, KeyOrigin, SentRecipient, ThreadKey, Ticket, TicketRecipient, Worker
from core.reply_tokens import ReplyTag, tag_is_for, tags_in

if TYPE_CHECKING:  # core.dkim_proof (and dkimpy) load only when a signature is to be checked
    from core.dkim_proof import DnsLookup


class MatchedBy(str, enum.Enum):
    TOKEN = "reply_token"
    OWN_ID = "own_message_id"
    SENT_ID = "helpdesk_message_id"
    REFERENCE = "reference"
    MASK = "subject_mask"
    NEW = "new"


class Trust(str, enum.Enum):
    PROVEN = "proven"
    CLAIMED = "claimed"  # the From is one of the ticket's recipients; nothing proves it
    NONE = "none"


@dataclass(frozen=True)
class ThreadMatch:
    """The decision: which ticket (None for a new one), how it was found, what the sender proved."""

    ticket: Ticket | None
    matched_by: MatchedBy
    trust: Trust = Trust.NONE
    quoted_mask: str | None = None  # a mask the mail quoted without proof: it opened a ticket of its own
    unproven_worker: bool = False  # a new ticket's mail from a worker's address that nothing proves

    @property
    def sender_verified(self) -> bool:
        """A proven sender, or the opener of a new ticket (unless it claims a worker's address unproven)."""
        if self.ticket is None:
            return not self.unproven_worker
        return self.trust is Trust.PROVEN


def thread_message(session: Session, message: InboundMessage, dkim_dns: DnsLookup | None = None) -> ThreadMatch:
    """Find the ticket this mail continues, or decide it opens a new one; say what its sender proved."""
    for tag in tags_in(_addressed_to(message)):
        ticket = session.scalars(select(Ticket).where(Ticket.mask == tag.mask)).first()
        if ticket is not None and _made_for_someone_on(session, tag, ticket):  # a forged tag links nothing
            return _joined(session, ticket.id, MatchedBy.TOKEN, message, dkim_dns, tag)
    own = session.get(ThreadKey, message.message_id)
    if own is not None and own.origin is KeyOrigin.REFERENCED and follows_own_id(own, message):
        return _joined(session, own.ticket_id, MatchedBy.OWN_ID, message, dkim_dns, own)
    for key in _keys_in_order(session, message.thread_ids):
        if key.origin is KeyOrigin.REFERENCED and not is_recipient(session, key.ticket_id, message.sender.email):
            continue  # an id we only saw mentioned links nobody else: a stranger may have planted it
        by = MatchedBy.SENT_ID if key.origin is KeyOrigin.SENT else MatchedBy.REFERENCE
        return _joined(session, key.ticket_id, by, message, dkim_dns, key)
    for mask in masks_in_subject(message.subject):
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).first()
        if ticket is None:
            continue
        match = _joined(session, ticket.id, MatchedBy.MASK, message, dkim_dns)
        if match.trust is not Trust.NONE:
            return match  # proven, or claimed by one of its recipients (who knows the mask anyway)
        return _new(session, message, dkim_dns, quoted_mask=mask)
    return _new(session, message, dkim_dns)


def sender_trust(session: Session, ticket_id: int, message: InboundMessage, dkim_dns: DnsLookup | None,
                 answers: ReplyTag | ThreadKey | None = None) -> Trust:
    """The one proof rule (rules 1-4 above): what the sender of a mail on this ticket has proven.

    `answers` is what linked the mail to the ticket: a reply tag or a thread key (None for a mask).
    """
    sender = message.sender.email
    if isinstance(answers, ReplyTag) and tag_is_for(session, answers, sender):
        return Trust.PROVEN  # rule 1
    if isinstance(answers, ThreadKey):
        if answers.origin is KeyOrigin.SENT and _was_sent_to(session, answers.message_id, sender):
            return Trust.PROVEN  # rule 2
        if answers.message_id == message.message_id and follows_own_id(answers, message):
            return Trust.PROVEN  # rule 4
    recipient = is_recipient(session, ticket_id, sender)
    if (recipient or _is_worker(session, sender)) and _dkim_proves(message, dkim_dns):
        return Trust.PROVEN  # rule 3, only worth a lookup for someone who could act
    return Trust.CLAIMED if recipient else Trust.NONE


def _joined(session: Session, ticket_id: int, by: MatchedBy, message: InboundMessage, dkim_dns: DnsLookup | None,
            answers: ReplyTag | ThreadKey | None = None) -> ThreadMatch:
    trust = sender_trust(session, ticket_id, message, dkim_dns, answers)
    return ThreadMatch(session.get(Ticket, ticket_id), by, trust)


def _new(session: Session, message: InboundMessage, dkim_dns: DnsLookup | None,
         quoted_mask: str | None = None) -> ThreadMatch:
    """A new ticket; a worker's address opening it must prove itself too (rule 3), or the mail is flagged."""
    unproven = _is_worker(session, message.sender.email) and not _dkim_proves(message, dkim_dns)
    return ThreadMatch(None, MatchedBy.NEW, quoted_mask=quoted_mask, unproven_worker=unproven)


def _addressed_to(message: InboundMessage) -> list[str]:
    return list(message.envelope.rcpt_tos) + [a.email for a in message.to + message.cc]


def _made_for_someone_on(session: Session, tag: ReplyTag, ticket: Ticket) -> bool:
    """A tag made for one of the ticket's recipients or a worker: ours, though perhaps not the sender's."""
    people = session.scalars(select(AddressRow.email).join(TicketRecipient, TicketRecipient.address_id == AddressRow.id)
                             .where(TicketRecipient.ticket_id == ticket.id)).all()
    people += session.scalars(select(Worker.email)).all()
    return any(tag_is_for(session, tag, email) for email in people)


def _dkim_proves(message: InboundMessage, dkim_dns: DnsLookup | None) -> bool:
    if b"dkim-signature" not in message.raw[:65536].lower():
        return False  # the common case costs neither the import nor a lookup
    from core.dkim_proof import dkim_proves

    return dkim_proves(message.raw, message.sender.email, dkim_dns)


def follows_own_id(key: ThreadKey, message: InboundMessage) -> bool:
    """Rule 4: the id was referenced, in a trusted mail, by someone this mail came from or was sent to."""
    if key.referenced_by is None:
        return False
    return key.referenced_by in _addresses_of(message)


def _addresses_of(message: InboundMessage) -> set[str]:
    return {message.sender.email, *(a.email for a in message.to + message.cc)}


def _keys_in_order(session: Session, ids: tuple[str, ...]) -> list[ThreadKey]:
    if not ids:
        return []
    found = {k.message_id: k for k in session.scalars(_KEYS_WITH_IDS, {"ids": ids})}
    return [found[i] for i in ids if i in found]


def _was_sent_to(session: Session, message_id: str, email: str) -> bool:
    return session.scalar(_SENT_TO, {"message_id": message_id, "email": email}) is not None


def _is_worker(session: Session, email: str) -> bool:
    return session.scalar(_WORKER, {"email": email}) is not None


def is_recipient(session: Session, ticket_id: int, email: str) -> bool:
    """One of the ticket's recipients (by address: a claim, not a proof)."""
    return session.scalar(_RECIPIENT, {"ticket_id": ticket_id, "email": email}) is not None


# Built once, not per mail: building a statement costs about as much as running it.
_KEYS_WITH_IDS = select(ThreadKey).where(ThreadKey.message_id.in_(bindparam("ids", expanding=True)))
_SENT_TO = select(SentRecipient.message_id).where(SentRecipient.message_id == bindparam("message_id"),
                                                  SentRecipient.email == bindparam("email"))
_WORKER = select(Worker.id).where(Worker.email == bindparam("email"))
_RECIPIENT = select(TicketRecipient.ticket_id).join(AddressRow, AddressRow.id == TicketRecipient.address_id).where(
    TicketRecipient.ticket_id == bindparam("ticket_id"), AddressRow.email == bindparam("email"))
