"""Normalises mail addresses so they compare equal however they were written."""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 5321's Quoted-string: printable characters and spaces, `"` and backslash only escaped; no controls.
_QUOTED_LOCAL_PART = re.compile(r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])+"')


@dataclass(frozen=True)
class Address:
    """One mailbox: a normalised address and the display name it came with."""

    email: str
    name: str = ""

    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[1]


def normalize_domain(domain: str) -> str:
    """Lower-case and IDNA-encode a domain; ValueError when it is not one."""
    cleaned = domain.strip().rstrip(".").lower()
    if not cleaned or any(c.isspace() or c in "<>@,;\"\\" for c in cleaned):
        raise ValueError(f"not a domain: {domain!r}")
    try:
        return cleaned.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"not a domain: {domain!r}") from None


def normalize_address(address: str) -> str:
    """local@domain with the domain normalised; the local part keeps its case (RFC 5321)
    except that we lower it too, since every real mail host treats it case-insensitively."""
    cleaned = address.strip().strip("<>").strip()
    local, at, domain = cleaned.rpartition("@")
    if not at or not _is_local_part(local):
        raise ValueError(f"not a mail address: {address!r}")
    return f"{local.lower()}@{normalize_domain(domain)}"


def _is_local_part(local: str) -> bool:
    """A local part as written: a quoted string (`"john doe"`, kept with its quotes, as SMTP needs it),
    or anything without white space, angle brackets or commas."""
    if _QUOTED_LOCAL_PART.fullmatch(local):
        return True
    return bool(local) and not any(c.isspace() or c in "<>," for c in local)


def try_normalize(address: str) -> str | None:
    """normalize_address, or None for something that is not an address."""
    try:
        return normalize_address(address)
    except ValueError:
        return None
