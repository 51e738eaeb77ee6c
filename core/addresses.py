"""Normalises mail addresses so they compare equal however they were written."""

from __future__ import annotations

from dataclasses import dataclass


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
    if not at or not local or any(c.isspace() or c in "<>," for c in local):
        raise ValueError(f"not a mail address: {address!r}")
    return f"{local.lower()}@{normalize_domain(domain)}"


def try_normalize(address: str) -> str | None:
    """normalize_address, or None for something that is not an address."""
    try:
        return normalize_address(address)
    except ValueError:
        return None
