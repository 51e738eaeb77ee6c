"""The one place that decides which ticket an inbound mail belongs to, and what its sender has proven.

Nothing in a mail's headers proves who sent it: anyone can type a From line, quote a mask, or copy
a Message-ID. A sender is PROVEN only by what only the real person could have (`sender_trust`):

1. a reply token made for that very address on that ticket (core.reply_tokens), found among the
   mail's recipients: the Reply-To of every mail the helpdesk sends to a person;
2. an answer to a Message-ID the helpdesk sent to that very address (sent_recipients);
3. a DKIM signature aligned with the sender's domain that verifies (core.dkim_proof);
4. the thread itself, for customers (never for a worker's address, which only 1-3 prove):
   a. an answer to a trusted mail of the ticket that was from or to the sender (they received it);
   b. the mail's own Message-ID was answered, in a trusted mail of the ticket, by someone this mail
      is from or to: it is that ticket's parent, arrived late (several such tickets are merged);
   c. an answer to the same mail a trusted mail of the ticket answered, to or from the one who
      answered there, or from someone that one wrote to (To or Cc) in a trusted mail of the ticket:
      the two answers were written to each other, whichever came first, and whether the mail they
      answer has arrived or not (a rule that held only until it arrives, or that asked who the
      ticket's recipients are by then, would join a reply in one order and not another).
   So a thread gives the same tickets and recipients whatever order its mails arrive in.

Which ticket, in order: a reply token; the mail's own Message-ID (4b); In-Reply-To and References,
only where they prove the sender (an id proves nothing by itself: anyone may have seen it, and the
mail it names may arrive later, so joining without proof would depend on arrival order); then a
mask in the subject. A mask is trivial to
quote, so it joins a ticket only for a proven sender or one of the ticket's recipients (flagged:
they know the mask anyway); anyone else's mail opens a ticket of its own, acknowledged like any new
mail, so a stranger cannot even learn whether the mask exists. A new ticket's mail from a worker's
address needs proof as well (DKIM), or it is flagged. A proven mail that answers mails of other
tickets where it is proven too joins those tickets' threads: they are merged (core.merging).

What a sender may do follows from the trust: PROVEN mail is a worker's answer (commands obeyed,
text relayed) or a recipient's reply (reopens, may bring in new recipients). CLAIMED (the From is
a recipient, nothing proves it) and NONE mail is kept on the ticket, shown flagged, never obeyed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.db import run
from core.inbound import InboundMessage
from core.masks import masks_in_subject
from core.models import (AddressRow, KeyOrigin, MergedMask, Message, ParentReference, SentRecipient, ThreadKey,
                         Ticket, TicketRecipient)
from core.reply_tokens import ReplyTag, tag_is_for, tags_in
from core.staff import worker_emails
from core.unseen_ids import is_unseen

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
    also: tuple[int, ...] = ()  # other tickets this mail proves to be the same thread: merged into `ticket`

    @property
    def sender_verified(self) -> bool:
        """A proven sender, or the opener of a new ticket (unless it claims a worker's address unproven)."""
        if self.ticket is None:
            return not self.unproven_worker
        return self.trust is Trust.PROVEN


MAX_MERGED = 10  # tickets one mail may join into one: a thread, not a sweep


def thread_message(session: Session, message: InboundMessage, dkim_dns: DnsLookup | None = None) -> ThreadMatch:
    """Find the ticket this mail continues, or decide it opens a new one; say what its sender proved."""
    for tag in tags_in(_addressed_to(message)):
        ticket = ticket_with_mask(session, tag.mask)
        if ticket is not None and _made_for_someone_on(session, tag, ticket):  # a forged tag links nothing
            return _with_others(session, _joined(session, ticket.id, MatchedBy.TOKEN, message, dkim_dns, tag),
                                message, dkim_dns)
    parents_of = awaiting_parent(session, message)
    if parents_of:
        trust = Trust.PROVEN if not _is_worker(session, message.sender.email) else \
            sender_trust(session, parents_of[0], message, dkim_dns)
        first = ThreadMatch(session.get(Ticket, parents_of[0]), MatchedBy.OWN_ID, trust,
                            also=tuple(parents_of[1:MAX_MERGED]) if trust is Trust.PROVEN else ())
        return _with_others(session, first, message, dkim_dns)
    links = _links(session, message)
    for ticket_id, answers in links:
        by = MatchedBy.SENT_ID if isinstance(answers, ThreadKey) and answers.origin is KeyOrigin.SENT \
            else MatchedBy.REFERENCE
        match = _joined(session, ticket_id, by, message, dkim_dns, answers)
        if match.trust is Trust.PROVEN:  # an id is no proof: anyone may have seen it, and the mail it
            return _with_others(session, match, message, dkim_dns, links)  # answers may even arrive later
    for mask in masks_in_subject(message.subject):
        ticket = ticket_with_mask(session, mask)
        if ticket is None:
            continue
        match = _joined(session, ticket.id, MatchedBy.MASK, message, dkim_dns)
        if match.trust is not Trust.NONE:
            return match  # proven, or claimed by one of its recipients (who knows the mask anyway)
        return _new(session, message, dkim_dns, quoted_mask=mask)
    return _new(session, message, dkim_dns)


def _with_others(session: Session, match: ThreadMatch, message: InboundMessage, dkim_dns: DnsLookup | None,
                 links: list[tuple[int, ThreadKey | AnsweredThere]] | None = None) -> ThreadMatch:
    """A proven mail that also answers mails of other tickets, proven there too, joins their threads.

    `links`: the mail's _links where the caller has them already (nothing was written since).
    """
    if match.trust is not Trust.PROVEN or match.ticket is None:
        return match
    others = list(match.also)
    for ticket_id, answers in (links if links is not None else _links(session, message)):
        if len(others) >= MAX_MERGED - 1:
            break
        if ticket_id == match.ticket.id or ticket_id in others:
            continue
        if sender_trust(session, ticket_id, message, dkim_dns, answers) is Trust.PROVEN:
            others.append(ticket_id)
    return ThreadMatch(match.ticket, match.matched_by, match.trust, also=tuple(others))


@dataclass(frozen=True)
class AnsweredThere:
    """An id the mail answers that a trusted mail of a ticket answered too (rule 4c), arrived or not."""

    message_id: str


def _links(session: Session, message: InboundMessage) -> list[tuple[int, ThreadKey | AnsweredThere]]:
    """Every ticket the mail's In-Reply-To and References lead to, most telling id first.

    An id of a mail we sent or received leads to its ticket. An id a trusted mail of a ticket answered
    leads there too, whether its mail has arrived or not, but only for a mail to or from its answerer,
    or from someone the answerer wrote to there (rule 4c): a stranger may have planted it. Answers
    to the helpdesk's own ids are not kept (core.tickets.record_thread_keys): such an id proves only
    whom it was sent to (rule 2), however many answered it.
    """
    keys = {k.message_id: k for k in _keys_in_order(session, message.thread_ids)}
    answered = _answered_by(session, message.thread_ids)
    sender, addresses = message.sender.email, _addresses_of(message)
    unsure = [(ticket_id, by) for tickets in answered.values() for ticket_id, by_whom in tickets.items()
              for by in by_whom if by not in addresses]
    wrote_to_sender = _wrote_to(session, unsure, sender)
    links: list[tuple[int, ThreadKey | AnsweredThere]] = []
    for message_id in message.thread_ids:
        key = keys.get(message_id)
        if key is not None and key.origin is not KeyOrigin.REFERENCED:
            links.append((key.ticket_id, key))
        there = AnsweredThere(message_id)
        for ticket_id, by_whom in sorted(answered.get(message_id, {}).items()):
            if by_whom & addresses or any((ticket_id, by) in wrote_to_sender for by in by_whom):
                links.append((ticket_id, there))
    return links


def sender_trust(session: Session, ticket_id: int, message: InboundMessage, dkim_dns: DnsLookup | None,
                 answers: ReplyTag | ThreadKey | AnsweredThere | None = None) -> Trust:
    """The one proof rule (rules 1-4 above): what the sender of a mail on this ticket has proven.

    `answers` is what linked the mail to the ticket: a reply tag or a thread key (None for a mask).
    """
    sender = message.sender.email
    if isinstance(answers, ReplyTag) and tag_is_for(session, answers, sender):
        return Trust.PROVEN  # rule 1
    if isinstance(answers, ThreadKey) and answers.origin is KeyOrigin.SENT \
            and _was_sent_to(session, answers.message_id, sender):
        return Trust.PROVEN  # rule 2
    worker = _is_worker(session, sender)
    recipient = is_recipient(session, ticket_id, sender)
    if not worker and _thread_proves(session, answers, sender):
        return Trust.PROVEN  # rule 4
    if (recipient or worker) and _dkim_proves(message, dkim_dns):
        return Trust.PROVEN  # rule 3, only worth a lookup for someone who could act
    return Trust.CLAIMED if recipient else Trust.NONE


def _thread_proves(session: Session, answers: ReplyTag | ThreadKey | AnsweredThere | None, sender: str) -> bool:
    """Rule 4a and 4c: the sender answers a trusted mail they were party to, or a mail such a mail answered."""
    if isinstance(answers, ThreadKey) and answers.origin is KeyOrigin.RECEIVED:
        return _was_party_to(session, answers.message_id, sender)
    return isinstance(answers, AnsweredThere)  # _links admits only tickets whose answerers the mail knows


def _was_party_to(session: Session, message_id: str, email: str) -> bool:
    """Whether the trusted mail with this id was from or to this address."""
    row = run(session, _PARTY, {"message_id": message_id}).first()
    if row is None or row.unverified_sender:
        return False
    return row.email == email or any(a.get("email") == email for a in (row.to_addrs or []) + (row.cc_addrs or []))


def would_join(session: Session, message: InboundMessage, key: ThreadKey) -> bool:
    """Whether threading joins the ticket this id leads to (what core.tickets asks to tell a race)."""
    if key.message_id == message.message_id:
        return key.ticket_id in awaiting_parent(session, message)
    links = [answers for ticket_id, answers in _links(session, message) if ticket_id == key.ticket_id]
    return any(sender_trust(session, key.ticket_id, message, None, answers) is Trust.PROVEN for answers in links)


def awaiting_parent(session: Session, message: InboundMessage) -> list[int]:
    """Rule 4b: tickets whose trusted mail answered this mail's id, by someone this mail is from or to (oldest first).

    Asked only of a mail arriving under its own id: one reusing a stored id is filed under a key of
    its own (core.pipeline.skip_duplicate), which nothing answered.
    """
    addresses = _addresses_of(message)
    tickets = _answered_by(session, (message.message_id,)).get(message.message_id, {})
    return sorted(ticket_id for ticket_id, by_whom in tickets.items() if by_whom & addresses)


def _answered_by(session: Session, message_ids: Sequence[str]) -> dict[str, dict[int, set[str]]]:
    """For each id, the tickets whose trusted mail answered it, with who answered it there; one query."""
    ids = [i for i in dict.fromkeys(message_ids) if not is_unseen(session, i, ParentReference)]
    answered: dict[str, dict[int, set[str]]] = {}
    if ids:
        for message_id, ticket_id, by in run(session, _PARENT_REFERENCES, {"ids": ids}):
            answered.setdefault(message_id, {}).setdefault(ticket_id, set()).add(by)
    return answered


def ticket_with_mask(session: Session, mask: str) -> Ticket | None:
    """The ticket of a mask, or of the ticket it was merged into."""
    ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).first()
    if ticket is not None:
        return ticket
    merged = session.scalar(select(MergedMask.ticket_id).where(MergedMask.mask == mask))
    return session.get(Ticket, merged) if merged is not None else None


def _joined(session: Session, ticket_id: int, by: MatchedBy, message: InboundMessage, dkim_dns: DnsLookup | None,
            answers: ReplyTag | ThreadKey | AnsweredThere | None = None) -> ThreadMatch:
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
    people = [*people, *worker_emails(session)]
    return any(tag_is_for(session, tag, email) for email in people)


def _dkim_proves(message: InboundMessage, dkim_dns: DnsLookup | None) -> bool:
    if b"dkim-signature" not in message.raw[:65536].lower():
        return False  # the common case costs neither the import nor a lookup
    from core.dkim_proof import dkim_proves

    return dkim_proves(message.raw, message.sender.email, dkim_dns)


def _addresses_of(message: InboundMessage) -> set[str]:
    return {message.sender.email, *(a.email for a in message.to + message.cc)}


def _keys_in_order(session: Session, ids: tuple[str, ...]) -> list[ThreadKey]:
    found = stored_keys(session, [i for i in ids if not is_unseen(session, i, ThreadKey)])
    return [found[i] for i in ids if i in found]


def stored_keys(session: Session, ids: Sequence[str], *, fresh: bool = False) -> dict[str, ThreadKey]:
    """The thread keys stored under these ids; `fresh`: read again even where the session has them."""
    if not ids:
        return {}
    options = {"populate_existing": True} if fresh else {}
    return {k.message_id: k for k in session.scalars(_KEYS_WITH_IDS, {"ids": ids}, execution_options=options)}


def _was_sent_to(session: Session, message_id: str, email: str) -> bool:
    return run(session, _SENT_TO, {"message_id": message_id, "email": email}).scalar() is not None


def _is_worker(session: Session, email: str) -> bool:
    return email in worker_emails(session)


def _wrote_to(session: Session, writers: Sequence[tuple[int, str]], email: str) -> set[tuple[int, str]]:
    """Which of these (ticket, writer) wrote a trusted mail of the ticket to or Cc this address; one query.

    Not "one of the ticket's recipients": who they are depends on what arrived before (and a mail
    through a list brings in no one), while who wrote to whom is in the mails themselves.
    """
    if not writers:
        return set()
    wanted = set(writers)
    tickets, people = sorted({t for t, _ in wanted}), sorted({w for _, w in wanted})
    rows = run(session, _WRITTEN, {"tickets": tickets, "writers": people})
    return {(ticket_id, writer) for ticket_id, writer, to_addrs, cc_addrs in rows if (ticket_id, writer) in wanted
            and any(a.get("email") == email for a in (to_addrs or []) + (cc_addrs or []))}


def is_recipient(session: Session, ticket_id: int, email: str) -> bool:
    """One of the ticket's recipients (by address: a claim, not a proof)."""
    return run(session, _RECIPIENT, {"ticket_id": ticket_id, "email": email}).scalar() is not None


# Built once, not per mail: building a statement costs about as much as running it.
_KEYS_WITH_IDS = select(ThreadKey).where(ThreadKey.message_id.in_(bindparam("ids", expanding=True)))
_SENT_TO = select(SentRecipient.message_id).where(SentRecipient.message_id == bindparam("message_id"),
                                                  SentRecipient.email == bindparam("email"))
_PARTY = select(Message.unverified_sender, Message.to_addrs, Message.cc_addrs, AddressRow.email).join(
    AddressRow, AddressRow.id == Message.sender_id).where(Message.message_id == bindparam("message_id"))
_PARENT_REFERENCES = select(ParentReference.message_id, ParentReference.ticket_id, ParentReference.referenced_by
                            ).where(ParentReference.message_id.in_(bindparam("ids", expanding=True)))
_WRITTEN = select(Message.ticket_id, AddressRow.email, Message.to_addrs, Message.cc_addrs).join(
    AddressRow, AddressRow.id == Message.sender_id).where(
    Message.ticket_id.in_(bindparam("tickets", expanding=True)), Message.unverified_sender.is_(False),
    AddressRow.email.in_(bindparam("writers", expanding=True)))
_RECIPIENT = select(TicketRecipient.ticket_id).join(AddressRow, AddressRow.id == TicketRecipient.address_id).where(
    TicketRecipient.ticket_id == bindparam("ticket_id"), AddressRow.email == bindparam("email"))
