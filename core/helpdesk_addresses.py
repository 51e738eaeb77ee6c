"""Decides which addresses belong to the helpdesk itself: accepted for mail, never recipients."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from core.addresses import try_normalize
from core.settings import HelpdeskSettings


@dataclass(frozen=True)
class OwnAddresses:
    domains: frozenset[str]
    addresses: frozenset[str]

    @classmethod
    def from_settings(cls, helpdesk: HelpdeskSettings) -> OwnAddresses:
        return cls(frozenset(helpdesk.domains), frozenset(helpdesk.addresses) | {helpdesk.default_address})

    def accepts(self, address: str) -> bool:
        """True for an address the gateway takes mail for (the SMTP RCPT decision)."""
        normalized = try_normalize(address)
        if normalized is None:
            return False
        local, _, domain = normalized.rpartition("@")
        plain = f"{local.partition('+')[0]}@{domain}"  # support+TAG@ is support@ (core.reply_tokens)
        return plain in self.addresses or normalized.rsplit("@", 1)[1] in self.domains


@lru_cache(maxsize=8)
def own_addresses(helpdesk: HelpdeskSettings) -> OwnAddresses:
    """The helpdesk's own addresses for these (frozen) settings, built once rather than per mail."""
    return OwnAddresses.from_settings(helpdesk)
