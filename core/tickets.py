"""Writes tickets and their messages: opening, appending, recipients, thread keys, audit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.addresses import Address
from core.db import cached, run
from core.errors import ThreadRace
from core.inbound import InboundAttachment, InboundMessage
from core.masks import new_mask
from core.models import (
    AddressRow,
    Attachment,
    AuditEntry,
    Blob,
    Bucket,
    Group,
    KeyOrigin,
    Message,
    MessageKind,
    ParentReference,
    Status,
    ThreadKey,
    Ticket,
    TicketRecipient,
    Worker,
)
from core.threads import stored_keys, would_join
from core.unseen_ids import is_unseen, seen
from core.rows import insert_row, insert_row_unless_present, insert_rows
from core.upsert import insert_ignore, insert_ignore_many

class StoredMail(Protocol):
    """What store_message keeps of a mail: an InboundMessage, or a worker's answer (core.worker_answer)."""

    @property
    def message_id(self) -> str: ...
    @property
    def sender(self) -> Address: ...
    @property
    def to(self) -> tuple[Address, ...]: ...
    @property
    def cc(self) -> tuple[Address, ...]: ...
    @property
    def subject(self) -> str: ...
    @property
    def date(self) -> datetime | None: ...
    @property
    def headers(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def defects(self) -> tuple[str, ...]: ...
    @property
    def raw(self) -> bytes: ...
    @property
    def attachments(self) -> tuple[InboundAttachment, ...]: ...
    @property
    def thread_ids(self) -> tuple[str, ...]: ...


MASK_ATTEMPTS = 10
NO_SUBJECT = "(no subject)"


def address_row(session: Session, address: Address) -> AddressRow:
    """The stored row of a mailbox, created on first sight; a display name fills in a blank one."""
    row = cached(session, (AddressRow, address.email), lambda: _stored_address(session, address))
    if address.name and not row.name:
        row.name = address.name[:200]
    return row


def _stored_address(session: Session, address: Address) -> AddressRow:
    new = insert_row_unless_present(session, AddressRow, email=address.email, name=address.name[:200], bouncing=False)
    return new if new is not None else session.scalars(_ADDRESS_WITH_EMAIL, {"email": address.email}).one()


_ADDRESS_WITH_EMAIL = select(AddressRow).where(AddressRow.email == bindparam("email"))  # built once


def open_ticket(session: Session, message: StoredMail, group: Group, bucket: Bucket,
                now: datetime, draw_mask: Callable[[], str] = new_mask, organization_id: int | None = None,
                spam_score: float | None = None, interesting_words: list[dict[str, object]] | None = None) -> Ticket:
    """A new open ticket under a fresh mask (a collision, however unlikely, draws again).

    The mask is looked up before it is used, not tried in a savepoint of its own: a savepoint per
    ticket was a sixth of an import's filing. Two daemons drawing the same unused mask in the same
    instant would still meet the unique index: that mail's filing fails once and is retried.
    """
    sender = address_row(session, message.sender)
    for _ in range(MASK_ATTEMPTS):
        mask = draw_mask()
        if run(session, _TICKET_WITH_MASK, {"mask": mask}).scalar() is not None:
            continue
        return insert_row(session, Ticket, mask=mask, subject=message.subject or NO_SUBJECT, status=Status.OPEN,
                          group_id=group.id, bucket_id=bucket.id, organization_id=organization_id,
                          created_at=now, updated_at=now, first_wrote_id=sender.id, last_wrote_id=sender.id,
                          spam_score=spam_score, interesting_words=interesting_words)
    raise ThreadRace("could not draw an unused mask")


_TICKET_WITH_MASK = select(Ticket.id).where(Ticket.mask == bindparam("mask"))  # built once


def add_recipients(session: Session, ticket: Ticket, addresses: list[Address]) -> list[AddressRow]:
    """Make these mailboxes recipients of the ticket; returns the ones that were new."""
    rows = [address_row(session, address) for address in addresses]
    new = insert_ignore_many(session, TicketRecipient.__table__,
                             [{"ticket_id": ticket.id, "address_id": row.id, "added_at": ticket.updated_at}
                              for row in rows], key="address_id")
    added = [row for row in rows if row.id in new]
    if added:
        session.expire(ticket, ["recipients"])
    return added


def store_message(session: Session, ticket: Ticket, message: StoredMail, *, verified: bool,
                  now: datetime, kind: MessageKind = MessageKind.INBOUND, text: str | None = None,
                  author: Worker | None = None) -> Message:
    """Append the mail to the ticket with its attachments, each content stored once.

    `text` replaces the mail's own text where the helpdesk keeps a cleaned version (a worker's
    reply without its commands, as the recipients saw it); the raw bytes keep the original.
    """
    seen(session, message.message_id, Message)
    row = insert_row(session, Message, ticket_id=ticket.id, message_id=message.message_id,
                     sender_id=address_row(session, message.sender).id, kind=kind,
                     author_worker_id=author.id if author else None,
                     unverified_sender=not verified, to_addrs=_plain(message.to), cc_addrs=_plain(message.cc),
                     subject=message.subject, date=message.date, received_at=now,
                     headers=[list(h) for h in message.headers], text=message.text if text is None else text,
                     html=message.html, defects=list(message.defects), raw=message.raw,
                     content_digest=content_digest(message))
    files = []
    for position, attachment in enumerate(message.attachments):
        digest = hashlib.sha256(attachment.data).hexdigest()
        insert_ignore(session, Blob.__table__, {"sha256": digest, "size": len(attachment.data),
                                                "data": attachment.data})
        files.append({"message_id": row.id, "position": position, "filename": attachment.filename,
                      "content_type": attachment.content_type, "blob_sha256": digest})
    insert_rows(session, Attachment, files)
    return row


def _plain(addresses: tuple[Address, ...]) -> list[dict[str, str]]:
    return [{"email": a.email, "name": a.name} for a in addresses]


def record_thread_keys(session: Session, ticket: Ticket, message: StoredMail, *, opened: bool,
                       trusted: bool) -> None:
    """Remember the mail's id and, for a trusted mail, the ids it answers, so later mail of the thread finds this ticket.

    An untrusted mail's references are not kept: a stranger could plant an id and capture the mail
    that later carries it (core.threads, rule 4). Each id a trusted mail answers, but the helpdesk's
    own, is kept with who answered it (ParentReference), whether that id's mail has arrived or not:
    rules 4b and 4c read them. When this mail just opened the ticket, an id already pointing
    elsewhere that threading would have followed means another gateway opened a ticket for the same
    thread at the same moment: raise, so this one retries and joins it.
    """
    ids = list(dict.fromkeys((message.message_id, *(message.thread_ids if trusted else ()))))
    sent = _claim_keys(session, ticket, message, ids, opened)
    answered = [i for i in ids[1:] if i not in sent]  # answering the helpdesk's own id proves by rule 2 alone
    for referenced in answered:
        seen(session, referenced, ParentReference)
    insert_ignore_many(session, ParentReference.__table__, [
        {"message_id": i, "ticket_id": ticket.id, "referenced_by": message.sender.email} for i in answered],
        key="message_id")


def _claim_keys(session: Session, ticket: Ticket, message: StoredMail, ids: list[str], opened: bool) -> set[str]:
    """Point each id at this ticket (the first, the mail's own, as received; the others as referenced)
    unless it leads elsewhere already; returns those of the ids the helpdesk sent.

    One insert for them all; only the ids already stored are read back and decided one by one.
    """
    origins = {i: KeyOrigin.RECEIVED if n == 0 else KeyOrigin.REFERENCED for n, i in enumerate(ids)}
    rows: list[dict[str, Any]] = [{"message_id": i, "ticket_id": ticket.id, "origin": origin}
                                  for i, origin in origins.items()]
    for i in ids:
        seen(session, i, ThreadKey)
    inserted = insert_ignore_many(session, ThreadKey.__table__, rows)
    existing = stored_keys(session, [i for i in ids if i not in inserted], fresh=True)
    for i in ids:  # in the mail's order, its own id first, as threading reads them
        if i in existing:
            _settle_key(session, ticket, message, existing[i], origins[i], opened)
    return {i for i, key in existing.items() if key.origin is KeyOrigin.SENT}


def _settle_key(session: Session, ticket: Ticket, message: StoredMail, existing: ThreadKey,
                origin: KeyOrigin, opened: bool) -> None:
    """An id that was stored already: who keeps it, and what it is known as now."""
    if existing.ticket_id != ticket.id:
        if opened and isinstance(message, InboundMessage) and _threading_would_have_followed(
                session, existing, origin, message):  # only mail opens a ticket that threading could have joined
            raise ThreadRace(f"{existing.message_id} already belongs to another ticket")
        if origin is KeyOrigin.RECEIVED and existing.origin is KeyOrigin.REFERENCED:
            _take_over(existing, ticket)  # our own id, only mentioned there: the mail's own ticket keeps it
    elif origin is KeyOrigin.RECEIVED and existing.origin is KeyOrigin.REFERENCED:
        existing.origin = KeyOrigin.RECEIVED


def _take_over(key: ThreadKey, ticket: Ticket) -> None:
    key.ticket_id, key.origin = ticket.id, KeyOrigin.RECEIVED


def _threading_would_have_followed(session: Session, existing: ThreadKey, origin: KeyOrigin,
                                   message: InboundMessage) -> bool:
    """Whether core.threads would have joined the key's ticket had the key been there in time."""
    return would_join(session, message, existing)


def record_sent_message_id(session: Session, ticket: Ticket, message_id: str) -> None:
    """Remember an id the helpdesk generated for mail about this ticket (replies to it prove the sender)."""
    seen(session, message_id, ThreadKey)
    session.add(ThreadKey(message_id=message_id, ticket_id=ticket.id, origin=KeyOrigin.SENT))


def audit_change(session: Session, ticket: Ticket, *, actor: str, action: str, before: str, after: str,
                 now: datetime) -> None:
    """A field of the ticket changes: the history says `before -> after`, and the ticket was updated now."""
    audit(session, ticket, actor=actor, action=action, detail=f"{before} -> {after}", now=now)
    ticket.updated_at = now


def audit(session: Session, ticket: Ticket | None, *, actor: str, action: str, detail: str, now: datetime) -> None:
    insert_rows(session, AuditEntry, [{"ticket_id": ticket.id if ticket else None, "at": now, "actor": actor,
                                       "action": action, "detail": detail}])


def content_digest(message: StoredMail) -> str:
    """What a mail says and to whom: sender, To, Cc, subject, text, HTML and attachments (names, types, bytes).

    The parties are in it because test suites and generators reuse one Message-ID for the same text
    sent by or to other people: those are other mails, and keeping only one would make a ticket's
    recipients depend on which arrived first. Trace fields (Received, Date) are not: a mail that
    came twice by two routes is one mail.
    """
    digest = hashlib.sha256()
    parties = [message.sender.email, ",".join(sorted(a.email for a in message.to)),
               ",".join(sorted(a.email for a in message.cc)), message.subject]
    for part in (*parties, message.text, message.html):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    for attachment in message.attachments:
        digest.update(f"{attachment.filename}\0{attachment.content_type}\0".encode("utf-8", "surrogatepass"))
        digest.update(hashlib.sha256(attachment.data).digest())
    return digest.hexdigest()


_DIGEST_OF_ID = select(Message.content_digest).where(Message.message_id == bindparam("message_id"))  # built once


def stored_digest(session: Session, message_id: str) -> str | None | bool:
    """The content digest stored under this Message-ID; None for a row from before digests; False when none."""
    if is_unseen(session, message_id, Message):
        return False
    row = run(session, _DIGEST_OF_ID, {"message_id": message_id}).first()
    return False if row is None else row[0]
