"""Organizations: the customers' companies, each known by a mail domain that files new tickets under it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, func, select, update
from sqlalchemy.orm import Session

from core.addresses import normalize_domain
from core.db import cached, run
from core.errors import AlreadyExists, NotFound, UsageError
from core.models import Organization, Ticket
from core.tickets import audit_change

NAME_LENGTH = 200


@dataclass(frozen=True)
class OrganizationView:
    name: str
    domain: str | None
    tickets: int


# built once: asked for every mail that opens a ticket; `domain` is unique, so an indexed lookup
_BY_DOMAINS = (select(Organization.id, Organization.domain)
               .where(Organization.domain.in_(bindparam("domains", expanding=True))))


def organization_for_sender(session: Session, email: str) -> int | None:
    """The id of the organization of a sender's domain or of the nearest parent domain
    (mail.acme.test -> acme.test); None when none has it. Looked up once per domain and transaction."""
    domain = email.rpartition("@")[2]
    if not domain:
        return None
    return cached(session, (Organization, domain), lambda: _nearest(session, domain))


def _nearest(session: Session, domain: str) -> int | None:
    labels = domain.split(".")
    candidates = [".".join(labels[i:]) for i in range(max(len(labels) - 1, 1))]  # never a bare top-level domain
    by_domain = {row[1]: row[0] for row in run(session, _BY_DOMAINS, {"domains": candidates})}
    return next((by_domain[c] for c in candidates if c in by_domain), None)


def find_organization(session: Session, name: str) -> Organization:
    org = session.scalars(select(Organization).where(func.lower(Organization.name) == name.strip().lower())).first()
    if org is None:
        raise NotFound(f"no organization named {name!r}")
    return org


def set_organization(session: Session, ticket: Ticket, org: Organization | None, *, actor: str,
                     now: datetime) -> bool:
    """File the ticket under an organization, or under none; False if it is there already."""
    if ticket.organization_id == (org.id if org else None):
        return False
    before = session.get(Organization, ticket.organization_id) if ticket.organization_id else None
    audit_change(session, ticket, actor=actor, action="organization", before=before.name if before else NO_ORGANIZATION,
                 after=org.name if org else NO_ORGANIZATION, now=now)
    ticket.organization_id = org.id if org else None
    return True


NO_ORGANIZATION = "none"


def add_organization(session: Session, name: str, domain: str | None) -> OrganizationView:
    cleaned = _name(name)
    if session.scalar(select(Organization.id).where(func.lower(Organization.name) == cleaned.lower())) is not None:
        raise AlreadyExists(f"an organization named {cleaned!r} exists already")
    org = Organization(name=cleaned, domain=_free_domain(session, domain, None))
    session.add(org)
    return organization_view(session, org)


def edit_organization(session: Session, name: str, *, new_name: str | None = None, domain: str | None = None,
                      no_domain: bool = False) -> OrganizationView:
    """Rename an organization or change its domain (tickets opened from then on follow the new domain)."""
    org = find_organization(session, name)
    if new_name is not None:
        cleaned = _name(new_name)
        taken = session.scalar(select(Organization.id).where(func.lower(Organization.name) == cleaned.lower(),
                                                             Organization.id != org.id))
        if taken is not None:
            raise AlreadyExists(f"an organization named {cleaned!r} exists already")
        org.name = cleaned
    if no_domain:
        org.domain = None
    elif domain is not None:
        org.domain = _free_domain(session, domain, org.id)
    return organization_view(session, org)


def remove_organization(session: Session, name: str) -> int:
    """Remove an organization; its tickets stay, belonging to none. Returns how many tickets it had."""
    org = find_organization(session, name)
    release = update(Ticket).where(Ticket.organization_id == org.id).values(organization_id=None)
    released = cast("CursorResult[Any]", session.execute(release)).rowcount
    session.delete(org)
    return int(released or 0)


def list_organizations(session: Session) -> list[OrganizationView]:
    """Every organization by name, with how many tickets it has."""
    counts = (select(Ticket.organization_id, func.count().label("tickets")).group_by(Ticket.organization_id)
              .subquery())
    rows = session.execute(select(Organization.name, Organization.domain, func.coalesce(counts.c.tickets, 0))
                           .outerjoin(counts, counts.c.organization_id == Organization.id)
                           .order_by(Organization.name))
    return [OrganizationView(name, domain, tickets) for name, domain, tickets in rows]


def organization_view(session: Session, org: Organization) -> OrganizationView:
    session.flush()
    tickets = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.organization_id == org.id))
    return OrganizationView(org.name, org.domain, tickets or 0)


def _name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_LENGTH:
        raise UsageError(f"an organization name has 1 to {NAME_LENGTH} characters, not {len(cleaned)}")
    return cleaned


def _free_domain(session: Session, domain: str | None, org_id: int | None) -> str | None:
    """The domain normalised (lower case, IDNA), refused when another organization has it."""
    if domain is None:
        return None
    try:
        normalized = normalize_domain(domain.strip().lstrip("@"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    owner = session.scalars(select(Organization).where(Organization.domain == normalized)).first()
    if owner is not None and owner.id != org_id:
        raise AlreadyExists(f"{normalized} is the domain of {owner.name} already")
    return normalized
