"""The helpdesk's commands for customers in the portal: part of `core.desk.Helpdesk`.

Every command takes the customer's address from their session (CustomerSessionView.email), never
from a form; each is one transaction and audited with that address. A ticket the customer may not
see answers TicketNotFound, exactly as a mask that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.accounts import LINK_LIFETIME, SignInRefused
from core.addresses import Address
from core.customer_accounts import (CustomerSessionView, CustomerSignedIn, end_customer_session,
                                    live_customer_session, new_portal_link, sign_in_with_portal_link)
from core.db import Database
from core.desk_accounts import read_mostly
from core.groups import ensure_default_group
from core.inbound import InboundAttachment
from core.lifecycle import close_ticket
from core.models import Group, Priority
from core.notify import Outbound, send_sign_in_link
from core.portal import customer_reply, open_customer_ticket
from core.portal_views import (PortalAttachment, PortalFilter, PortalTicket, PortalTicketRow, customer_attachment,
                               customer_ticket, customer_tickets, their_ticket, waiting_for_customer)
from core.settings import Settings
from core.tickets import audit


@dataclass(frozen=True)
class CustomerRequest:
    """A ticket a customer opens in the portal."""

    subject: str
    text: str
    priority: Priority = Priority.NORMAL
    attachments: tuple[InboundAttachment, ...] = ()


class PortalCommands:
    """A method per customer use case, each one transaction; `Helpdesk` supplies settings, database and clock."""

    settings: Settings
    database: Database
    clock: Callable[[], datetime]

    # --- signing in -------------------------------------------------------------------------------

    def mail_portal_link(self, email: str, client: str) -> None:
        """Mail a one-time portal link if the address is a customer's; the same answer either way."""
        with self.database.write() as session:
            now = self.clock()
            token = new_portal_link(session, email, client, now)
            if token is None:
                return
            group = ensure_default_group(session, self.settings.helpdesk)
            send_sign_in_link(session, Outbound.from_settings(self.settings), group, email.strip().lower(),
                              f"{self.settings.web.base_url}/portal/sign-in/{token}",
                              int(LINK_LIFETIME.total_seconds() // 60), now, template="portal_link",
                              subject=f"Your link to your {group.name} requests")

    def portal_sign_in(self, token: str, client: str) -> CustomerSignedIn:
        """A customer session for a mailed link, once and within its minutes; SignInRefused otherwise."""
        refused: SignInRefused | None = None
        with self.database.write() as session:
            try:
                return sign_in_with_portal_link(session, token, client, self.clock())
            except SignInRefused as exc:
                refused = exc  # the refusal's audit line is committed
        raise refused

    def portal_session(self, token: str) -> CustomerSessionView | None:
        """The live customer session a portal cookie names, or None; as the desk's sessions."""
        return read_mostly(self.database, self.settings.web, self.clock(), live_customer_session, token)

    def portal_sign_out(self, token: str) -> None:
        with self.database.write() as session:
            end_customer_session(session, token, self.clock())

    # --- reading ----------------------------------------------------------------------------------

    def customer_tickets(self, email: str, wanted: PortalFilter = PortalFilter()) -> list[PortalTicketRow]:
        with self.database.read() as session:
            return customer_tickets(session, email, wanted)

    def customer_ticket(self, email: str, mask: str) -> PortalTicket:
        with self.database.read() as session:
            return customer_ticket(session, email, mask)

    def waiting_for_customer(self, email: str) -> int:
        """The portal's badge: the customer's tickets waiting for them."""
        with self.database.read() as session:
            return waiting_for_customer(session, email)

    def customer_attachment(self, email: str, mask: str, attachment_id: int) -> tuple[PortalAttachment, bytes]:
        """An attachment of the customer's ticket; the download is audited."""
        with self.database.write() as session:
            ticket, found, data = customer_attachment(session, email, mask, attachment_id)
            audit(session, ticket, actor=email, action="portal_download",
                  detail=f"attachment {attachment_id} ({found.filename})", now=self.clock())
            return found, data

    # --- acting -----------------------------------------------------------------------------------

    def customer_open_ticket(self, customer: CustomerSessionView, request: CustomerRequest) -> str:
        """A new ticket from the portal, filed as the customer's mail to the helpdesk's address; returns its mask."""
        with self.database.write() as session:
            now = self.clock()
            chosen = ensure_default_group(session, self.settings.helpdesk)
            ticket = open_customer_ticket(session, self.settings, Address(customer.email, customer.name), chosen,
                                          request.subject, request.text, request.priority, request.attachments, now)
            audit(session, ticket, actor=customer.email, action="portal_opened", detail="opened in the portal", now=now)
            return ticket.mask

    def customer_reply(self, customer: CustomerSessionView, mask: str, text: str,
                       attachments: tuple[InboundAttachment, ...] = ()) -> None:
        """The customer's answer on their ticket; a waiting or closed ticket opens again, as by mail."""
        with self.database.write() as session:
            ticket = their_ticket(session, customer.email, mask)
            group = session.get(Group, ticket.group_id)
            assert group is not None
            now = self.clock()
            customer_reply(session, self.settings, Address(customer.email, customer.name), ticket, group, text,
                           attachments, now)
            audit(session, ticket, actor=customer.email, action="portal_reply", detail="answered in the portal",
                  now=now)

    def customer_close(self, customer: CustomerSessionView, mask: str) -> bool:
        """The customer closes their ticket; False if it was closed already."""
        with self.database.write() as session:
            ticket = their_ticket(session, customer.email, mask)
            return close_ticket(session, Outbound.from_settings(self.settings), ticket, actor=customer.email,
                                reason="closed by the customer in the portal", now=self.clock())
