"""Buckets, the folders of a group's tickets, and moving a ticket between them; new tickets land in the Inbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.errors import AlreadyExists, NotFound, UsageError
from core.groups import INBOX, inbox_of
from core.models import Bucket, Group, Ticket
from core.staff import find_group
from core.tickets import audit_change

NAME_LENGTH = 100


@dataclass(frozen=True)
class BucketView:
    group: str
    name: str
    tickets: int


def find_bucket(session: Session, group: Group, name: str) -> Bucket:
    """The group's bucket of that name, in any letter case."""
    bucket = session.scalars(select(Bucket).where(Bucket.group_id == group.id,
                                                  func.lower(Bucket.name) == name.strip().lower())).first()
    if bucket is None:
        raise NotFound(f"group {group.name} has no bucket {name!r}")
    return bucket


def add_bucket(session: Session, group_name: str, name: str) -> BucketView:
    group = find_group(session, group_name)
    cleaned = _name(name)
    _refuse_taken(session, group, cleaned)
    bucket = Bucket(group_id=group.id, name=cleaned)
    session.add(bucket)
    session.flush()
    return _view(session, group, bucket)


def list_buckets(session: Session, group_name: str | None = None) -> list[BucketView]:
    """Every bucket (or one group's), by group and name, with how many tickets each holds."""
    counts = (select(Ticket.bucket_id, func.count().label("tickets")).group_by(Ticket.bucket_id).subquery())
    query = (select(Group.name, Bucket.name, func.coalesce(counts.c.tickets, 0))
             .join(Group, Group.id == Bucket.group_id).outerjoin(counts, counts.c.bucket_id == Bucket.id)
             .order_by(Group.name, Bucket.name))
    if group_name is not None:
        query = query.where(Bucket.group_id == find_group(session, group_name).id)
    return [BucketView(group, name, tickets) for group, name, tickets in session.execute(query)]


def rename_bucket(session: Session, group_name: str, name: str, new_name: str) -> BucketView:
    group = find_group(session, group_name)
    bucket = _not_the_inbox(find_bucket(session, group, name), "renamed")
    cleaned = _name(new_name)
    if cleaned.lower() != bucket.name.lower():
        _refuse_taken(session, group, cleaned)
    bucket.name = cleaned
    return _view(session, group, bucket)


def remove_bucket(session: Session, group_name: str, name: str) -> None:
    """Remove an empty bucket; one still holding tickets is refused (move them first)."""
    group = find_group(session, group_name)
    bucket = _not_the_inbox(find_bucket(session, group, name), "removed")
    held = _ticket_count(session, bucket)
    if held:
        raise UsageError(f"bucket {group.name}/{bucket.name} still holds {held} ticket{'s' if held > 1 else ''};"
                         " move them first")
    session.delete(bucket)


def destination(session: Session, ticket: Ticket, group_name: str | None, bucket_name: str | None) -> Bucket:
    """Where `move` sends the ticket: a bucket of the group named (its Inbox by default), else of its own group."""
    group = find_group(session, group_name) if group_name else session.get(Group, ticket.group_id)
    assert group is not None
    return find_bucket(session, group, bucket_name) if bucket_name else inbox_of(session, group)


def move_ticket(session: Session, ticket: Ticket, bucket: Bucket, *, actor: str, now: datetime) -> bool:
    """Put the ticket in this bucket (and so in its group); False if it is there already."""
    if ticket.bucket_id == bucket.id:
        return False
    before = session.get(Bucket, ticket.bucket_id)
    assert before is not None
    audit_change(session, ticket, actor=actor, action="move", before=place(session, before),
                 after=place(session, bucket), now=now)
    ticket.group_id, ticket.bucket_id = bucket.group_id, bucket.id
    return True


def place(session: Session, bucket: Bucket) -> str:
    """`Group/Bucket`, as the history and the command line name it."""
    group = session.get(Group, bucket.group_id)
    assert group is not None
    return f"{group.name}/{bucket.name}"


def _name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_LENGTH:
        raise UsageError(f"a bucket name has 1 to {NAME_LENGTH} characters, not {len(cleaned)}")
    return cleaned


def _refuse_taken(session: Session, group: Group, name: str) -> None:
    if session.scalar(select(Bucket.id).where(Bucket.group_id == group.id,
                                              func.lower(Bucket.name) == name.lower())) is not None:
        raise AlreadyExists(f"group {group.name} has a bucket {name!r} already")


def _not_the_inbox(bucket: Bucket, change: str) -> Bucket:
    if bucket.name == INBOX:
        raise UsageError(f"the {INBOX} cannot be {change}: new tickets land there")
    return bucket


def _ticket_count(session: Session, bucket: Bucket) -> int:
    return session.scalar(select(func.count()).select_from(Ticket).where(Ticket.bucket_id == bucket.id)) or 0


def _view(session: Session, group: Group, bucket: Bucket) -> BucketView:
    session.flush()
    return BucketView(group.name, bucket.name, _ticket_count(session, bucket))
