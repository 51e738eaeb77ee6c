"""Reply addresses that prove who answers: `support+xer-83472-879.k3j5q2m7a9c4d6ef@example.com`.

Every mail the helpdesk sends to a person has such a Reply-To. The tag after `+` names the ticket
and carries an HMAC of (ticket, person) under a key the helpdesk made for itself and keeps in its
database, so only someone who received that person's mail can write to the address: GitHub's
reply-by-email works this way. A From line proves nothing; answering this address does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import cached
from core.models import HelpdeskSecret
from core.upsert import insert_ignore

KEY_NAME = "reply_token"
MAC_LENGTH = 16  # base32 characters: 80 bits
_TAG = re.compile(r"^([a-z]{3}-\d{5}-\d{3})\.([a-z2-7]{%d})$" % MAC_LENGTH)


@dataclass(frozen=True)
class ReplyTag:
    """A token read from one of our addresses: the ticket it names and the MAC it carries."""

    mask: str
    mac: str


def _key(session: Session) -> bytes:
    """The helpdesk's token key, made on first use; every process and daemon reads the same one."""
    def load() -> bytes:
        insert_ignore(session, HelpdeskSecret.__table__, {"name": KEY_NAME, "value": secrets.token_bytes(32)})
        return session.scalars(select(HelpdeskSecret.value).where(HelpdeskSecret.name == KEY_NAME)).one()
    return cached(session, (HelpdeskSecret, KEY_NAME), load)


def _mac(key: bytes, mask: str, email: str) -> str:
    digest = hmac.new(key, f"{mask.upper()}\n{email.lower()}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:MAC_LENGTH]


def reply_address(session: Session, group_address: str, mask: str, email: str) -> str:
    """The group's address tagged for this person on this ticket."""
    local, _, domain = group_address.rpartition("@")
    return f"{local}+{mask.lower()}.{_mac(_key(session), mask, email)}@{domain}"


def read_tag(address: str) -> ReplyTag | None:
    """The tag of `local+mask.mac@domain`, or None when the address carries none."""
    local = address.rpartition("@")[0]
    _, plus, tag = local.partition("+")
    match = _TAG.match(tag.lower()) if plus else None
    return ReplyTag(match.group(1).upper(), match.group(2)) if match else None


def tag_is_for(session: Session, tag: ReplyTag, email: str) -> bool:
    """Whether the tag was made for this person on its ticket (compared in constant time)."""
    return hmac.compare_digest(_mac(_key(session), tag.mask, email), tag.mac)


def tags_in(addresses: Iterable[str]) -> list[ReplyTag]:
    """Every reply tag among these addresses, each once, in order."""
    return list(dict.fromkeys(t for t in (read_tag(a) for a in addresses) if t is not None))


def without_tag(address: str) -> str:
    """`support+anything@example.com` is `support@example.com`: the address a group is known by."""
    local, at, domain = address.rpartition("@")
    return f"{local.partition('+')[0]}{at}{domain}" if at else address
