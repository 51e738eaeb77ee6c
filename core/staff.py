"""Workers and groups: who answers the mail, and which address each group's mail arrives at."""

from __future__ import annotations

import re

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.addresses import normalize_address
from core.db import cached
from core.errors import AlreadyExists, NotFound, UsageError
from core.helpdesk_addresses import OwnAddresses
from core.groups import INBOX
from core.models import Bucket, Group, GroupMember, Ticket, Worker
from core.upsert import insert_ignore


@dataclass(frozen=True)
class WorkerView:
    email: str
    name: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class GroupView:
    name: str
    address: str
    auto_reply: bool
    close_notice: bool
    members: tuple[str, ...]
    auto_close_days: int | None = None
    language: str = ""
    transcripts: bool = False  # closed tickets' conversations kept encrypted, their links mailed (core.transcripts)
    transcript_address: str = ""  # where each link is copied too; "" nowhere


def _address(value: str) -> str:
    try:
        return normalize_address(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def worker_emails(session: Session) -> frozenset[str]:
    """Every worker's address, read once per transaction: each mail of a batch asks."""
    return cached(session, Worker, lambda: frozenset(session.scalars(select(Worker.email))))


def find_group(session: Session, name: str) -> Group:
    group = session.scalars(select(Group).where(func.lower(Group.name) == name.strip().lower())).first()
    if group is None:
        raise NotFound(f"no group named {name!r}")
    return group


def find_worker(session: Session, email: str) -> Worker:
    worker = session.scalars(select(Worker).where(Worker.email == _address(email))).first()
    if worker is None:
        raise NotFound(f"no worker with address {email}")
    return worker


def add_worker(session: Session, email: str, name: str, groups: list[str]) -> WorkerView:
    address = _address(email)
    if session.scalar(select(Worker.id).where(Worker.email == address)) is not None:
        raise AlreadyExists(f"worker {address} exists already")
    if session.scalar(select(Group.id).where(Group.address == address)) is not None:
        raise UsageError(f"{address} is a group's address, not a person's")
    worker = Worker(email=address, name=name.strip() or address)
    session.add(worker)
    session.flush()
    for group_name in groups:
        session.add(GroupMember(group_id=find_group(session, group_name).id, worker_id=worker.id))
    session.flush()
    return worker_view(session, worker)


def edit_worker(session: Session, email: str, *, name: str | None = None, join: tuple[str, ...] = (),
                leave: tuple[str, ...] = ()) -> WorkerView:
    """Rename a worker, or have them join or leave groups (joining twice or leaving a group not joined is no error)."""
    worker = find_worker(session, email)
    if name is not None:
        if not name.strip():
            raise UsageError("a worker's name cannot be empty")
        worker.name = name.strip()
    for group_name in join:
        insert_ignore(session, GroupMember.__table__, {"group_id": find_group(session, group_name).id,
                                                       "worker_id": worker.id})
    for group_name in leave:
        session.execute(delete(GroupMember).where(GroupMember.group_id == find_group(session, group_name).id,
                                                  GroupMember.worker_id == worker.id))
    session.flush()
    return worker_view(session, worker)


def remove_worker(session: Session, email: str) -> None:
    session.delete(find_worker(session, email))


def worker_view(session: Session, worker: Worker) -> WorkerView:
    groups = session.scalars(select(Group.name).join(GroupMember, GroupMember.group_id == Group.id)
                             .where(GroupMember.worker_id == worker.id).order_by(Group.name))
    return WorkerView(worker.email, worker.name, tuple(groups))


def list_workers(session: Session) -> list[WorkerView]:
    return [worker_view(session, w) for w in session.scalars(select(Worker).order_by(Worker.email))]


def add_group(session: Session, name: str, address: str, auto_reply: bool, close_notice: bool,
              own: OwnAddresses | None = None, language: str = "") -> GroupView:
    """A new group and its inbox; given `own`, an address the gateway would refuse mail for is refused."""
    address = _address(address)
    if session.scalar(select(Group.id).where((func.lower(Group.name) == name.strip().lower())
                                             | (Group.address == address))) is not None:
        raise AlreadyExists(f"a group named {name!r} or at {address} exists already")
    _refuse_worker_address(session, address)
    if own is not None:
        own.require(address)
    group = Group(name=name.strip(), address=address, auto_reply=auto_reply, close_notice=close_notice,
                  language=language_code(language))
    session.add(group)
    session.flush()
    session.add(Bucket(group_id=group.id, name=INBOX))
    session.flush()
    return group_view(session, group)


def remove_group(session: Session, name: str) -> None:
    group = find_group(session, name)
    tickets = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.group_id == group.id))
    if tickets:
        raise UsageError(f"group {group.name} still has {tickets} tickets; move them first")
    session.execute(delete(Bucket).where(Bucket.group_id == group.id))
    session.delete(group)


def group_view(session: Session, group: Group) -> GroupView:
    return GroupView(group.name, group.address, group.auto_reply, group.close_notice,
                     tuple(group_members(session, group.id)), group.auto_close_days, group.language,
                     group.transcripts, group.transcript_address)


def set_auto_close_days(session: Session, name: str, days: int | None) -> GroupView:
    """Close the group's tickets that wait untouched longer than `days` (the daemon does it); None: never."""
    if days is not None and days < 1:
        raise UsageError(f"auto-close days must be at least 1, not {days}")
    group = find_group(session, name)
    group.auto_close_days = days
    return group_view(session, group)


def edit_group(session: Session, name: str, *, address: str | None = None, auto_reply: bool | None = None,
               close_notice: bool | None = None, own: OwnAddresses | None = None,
               language: str | None = None) -> GroupView:
    """Change a group's address, acknowledgements or close notices; what is not given stays.

    Given `own`, a new address the gateway would refuse mail for is refused.
    """
    group = find_group(session, name)
    if address is not None:
        group.address = _free_group_address(session, address, group)
        if own is not None:
            own.require(group.address)
    if auto_reply is not None:
        group.auto_reply = auto_reply
    if close_notice is not None:
        group.close_notice = close_notice
    if language is not None:
        group.language = language_code(language)
    return group_view(session, group)


_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})?")  # a BCP 47 language, e.g. fr, de, pt-br


def language_code(given: str) -> str:
    """A group's language as its templates are named (`close_notice.fr.txt.j2`); "" or `en`: the shipped English."""
    code = given.strip().lower().replace("_", "-")
    if code in ("", "en"):
        return ""
    if not _LANGUAGE.fullmatch(code):
        raise UsageError(f"not a language code: {given!r} (e.g. fr, de, pt-br)")
    return code


def _free_group_address(session: Session, address: str, group: Group) -> str:
    normalized = _address(address)
    other = session.scalars(select(Group).where(Group.address == normalized, Group.id != group.id)).first()
    if other is not None:
        raise AlreadyExists(f"{normalized} is the address of group {other.name} already")
    _refuse_worker_address(session, normalized)
    return normalized


def _refuse_worker_address(session: Session, address: str) -> None:
    if session.scalar(select(Worker.id).where(Worker.email == address)) is not None:
        raise UsageError(f"{address} is a worker's address")


def group_members(session: Session, group_id: int) -> list[str]:
    """The addresses of a group's workers, in a stable order."""
    return list(session.scalars(select(Worker.email).join(GroupMember, GroupMember.worker_id == Worker.id)
                                .where(GroupMember.group_id == group_id).order_by(Worker.email)))


def list_groups(session: Session) -> list[GroupView]:
    return [group_view(session, g) for g in session.scalars(select(Group).order_by(Group.name))]
