"""Groups and their buckets: where a ticket lands, decided by the address it was sent to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.addresses import normalize_address
from core.db import Database
from core.errors import UsageError
from core.helpdesk_addresses import OwnAddresses
from core.models import Bucket, Group
from core.reply_tokens import without_tag
from core.settings import HelpdeskSettings
from core.upsert import insert_ignore

INBOX = "Inbox"


def ensure_default_group(session: Session, helpdesk: HelpdeskSettings) -> Group:
    """The group named in settings, with its inbox, created on first use."""
    insert_ignore(session, Group.__table__, {"name": helpdesk.default_group,
                                             "address": helpdesk.default_address, "auto_reply": True})
    group = session.scalars(select(Group).where(Group.name == helpdesk.default_group)).one()
    insert_ignore(session, Bucket.__table__, {"group_id": group.id, "name": INBOX})
    return group


def ensure_default_group_exists(db: Database, helpdesk: HelpdeskSettings) -> None:
    """The default group exists before any command looks for it (`worker add --group Support`); a write
    only when it is missing, so read-only commands take no write lock."""
    with db.read() as session:
        present = session.scalar(select(Group.id).where(Group.name == helpdesk.default_group))
    if present is None:
        with db.write() as session:
            ensure_default_group(session, helpdesk)


def inbox_of(session: Session, group: Group) -> Bucket:
    bucket = session.scalars(select(Bucket).where(Bucket.group_id == group.id, Bucket.name == INBOX)).first()
    if bucket is None:
        insert_ignore(session, Bucket.__table__, {"group_id": group.id, "name": INBOX})
        bucket = session.scalars(select(Bucket).where(Bucket.group_id == group.id, Bucket.name == INBOX)).one()
    return bucket


def group_for_recipients(session: Session, rcpt_tos: tuple[str, ...], helpdesk: HelpdeskSettings) -> Group:
    """The group whose address the mail was sent to; the default group otherwise."""
    if rcpt_tos:
        addresses = list(dict.fromkeys(without_tag(a) for a in rcpt_tos))  # support+TAG@ is support@
        group = session.scalars(select(Group).where(Group.address.in_(addresses)).order_by(Group.id)).first()
        if group is not None:
            return group
    return ensure_default_group(session, helpdesk)


def set_transcripts(group: Group, own: OwnAddresses, *, keep: bool | None = None,
                    address: str | None = None) -> None:
    """Turn a group's transcripts on or off, or set (`""`: drop) their copy's address; what is not given stays.

    An address the helpdesk takes mail for is refused: each copy would come back as a new ticket.
    """
    if address is not None:
        group.transcript_address = _copy_address(address, own)
    if keep is not None:
        group.transcripts = keep


def _copy_address(given: str, own: OwnAddresses) -> str:
    if not given.strip():
        return ""
    try:
        address = normalize_address(given)
    except ValueError as exc:
        raise UsageError(f"transcript address: {exc}") from None
    if own.accepts(address):
        raise UsageError(f"transcript address: {address} is the helpdesk's own: each copy would open a ticket")
    return address
