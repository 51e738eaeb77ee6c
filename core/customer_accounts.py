"""Who a customer is in the portal: a one-time link mailed to their address, then a session of their own.

No passwords: owning the mailbox is the proof, as it is for a reply token. A link is asked for
with an address; the answer is the same whether the helpdesk knows it or not, and a link is mailed
only to an address that is a recipient of a ticket customers may see (never to a worker's). Links
last LINK_LIFETIME and work once; only their SHA-256 is stored. Requests are throttled per address
(LINKS_PER_ADDRESS in the window) and per client (core.accounts' client budget).

A customer session is a row of its own table, never a worker's `web_sessions`, so no customer
cookie can open the desk or the API, whatever it is sent to.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.accounts import (LINK_LIFETIME, LINKS_PER_ADDRESS, THROTTLE_WINDOW, SignInRefused, count_link_request,
                           still_live, token_hash)
from core.models import (AddressRow, AuditEntry, CustomerSession, CustomerSignInLink, Ticket,
                         TicketRecipient, Worker)
from core.portal_views import SHOWN_TO_CUSTOMERS

PORTAL_ACTOR = "portal sign-in"


@dataclass(frozen=True)
class CustomerSignedIn:
    token: str  # for the cookie; shown once, never stored
    email: str
    csrf_token: str


@dataclass(frozen=True)
class CustomerSessionView:
    email: str
    name: str
    csrf_token: str


def new_portal_link(session: Session, email: str, client: str, now: datetime) -> str | None:
    """A one-time token for this address, or None (not a customer, a worker, or enough links lately).

    Every request counts towards the client's throttle, whatever the address.
    """
    address = email.strip().lower()[:320]
    count_link_request(session, client, now)
    row = session.scalars(select(AddressRow).where(AddressRow.email == address)).first()
    if row is None or not _is_customer(session, row) or session.scalar(select(Worker.id).where(Worker.email == address)):
        return None
    recent = session.scalar(select(func.count()).select_from(CustomerSignInLink).where(
        CustomerSignInLink.address_id == row.id, CustomerSignInLink.created_at > now - THROTTLE_WINDOW)) or 0
    if recent >= LINKS_PER_ADDRESS:
        return None
    token = secrets.token_urlsafe(32)
    session.add(CustomerSignInLink(token_hash=token_hash(token), address_id=row.id, created_at=now))
    session.add(AuditEntry(ticket_id=None, at=now, actor=PORTAL_ACTOR, action="portal_link",
                           detail=f"{row.email} from {client[:64]}"))
    return token


def _is_customer(session: Session, row: AddressRow) -> bool:
    return session.scalar(select(TicketRecipient.ticket_id).join(Ticket, Ticket.id == TicketRecipient.ticket_id)
                          .where(TicketRecipient.address_id == row.id, Ticket.status.in_(SHOWN_TO_CUSTOMERS))
                          .limit(1)) is not None


def sign_in_with_portal_link(session: Session, token: str, client: str, now: datetime) -> CustomerSignedIn:
    """A customer session for a link used once, within LINK_LIFETIME; SignInRefused otherwise (and audited)."""
    found = session.execute(select(CustomerSignInLink, AddressRow)
                            .join(AddressRow, AddressRow.id == CustomerSignInLink.address_id)
                            .where(CustomerSignInLink.token_hash == token_hash(token))).first()
    if found is None or found[0].used_at is not None or now - found[0].created_at > LINK_LIFETIME:
        session.add(AuditEntry(ticket_id=None, at=now, actor=PORTAL_ACTOR, action="portal_link_refused",
                               detail=f"{'unknown' if found is None else found[1].email} from {client[:64]}"))
        raise SignInRefused("this sign-in link is unknown, used already or expired: ask for a new one")
    link, address = found
    link.used_at = now
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(CustomerSession(token_hash=token_hash(token), address_id=address.id, csrf_token=csrf, created_at=now,
                                last_seen_at=now))
    session.add(AuditEntry(ticket_id=None, at=now, actor=address.email, action="portal_sign_in",
                           detail=f"by a mailed link from {client[:64]}"))
    return CustomerSignedIn(token, address.email, csrf)


def live_customer_session(session: Session, token: str, now: datetime, *, idle: timedelta, absolute: timedelta,
                          write: bool = True) -> tuple[CustomerSessionView | None, bool]:
    """As core.accounts.live_session, for customers: the view, and whether a writing call should follow."""
    found = session.execute(select(CustomerSession, AddressRow)
                            .join(AddressRow, AddressRow.id == CustomerSession.address_id)
                            .where(CustomerSession.token_hash == token_hash(token),
                                   CustomerSession.ended_at.is_(None))).first()
    if found is None:
        return None, False
    row, address = found
    live, write_due = still_live(row, now, idle=idle, absolute=absolute, write=write)
    return (CustomerSessionView(address.email, address.name, row.csrf_token) if live else None), write_due


def end_customer_session(session: Session, token: str, now: datetime) -> None:
    """Sign out: the session ends, and the audit log says whose."""
    ended = session.execute(update(CustomerSession).where(CustomerSession.token_hash == token_hash(token),
                                                          CustomerSession.ended_at.is_(None))
                            .values(ended_at=now).returning(CustomerSession.address_id)).scalars().all()
    for address_id in ended:
        email = session.scalar(select(AddressRow.email).where(AddressRow.id == address_id))
        session.add(AuditEntry(ticket_id=None, at=now, actor=email or "?", action="portal_sign_out", detail=""))
