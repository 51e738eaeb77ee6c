"""Decides which addresses belong to the helpdesk itself: accepted for mail, never recipients."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from core.addresses import try_normalize
from core.errors import UsageError
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

    def require(self, address: str) -> None:
        """Refuse, when a group's address is set, an address the gateway would answer 550 for.

        Setting it is where the mistake is made; the first customer's bounce is too late to learn it.
        The test is `accepts` itself, so the setting and the SMTP decision can never disagree.
        """
        if self.accepts(address):
            return
        domains = ", ".join(sorted(self.domains)) or "none"
        raise UsageError(f"{address} is not a helpdesk address (domains: {domains}): mail to it would be refused; "
                         "add its domain to [helpdesk] domains or the address to [helpdesk] addresses")


@lru_cache(maxsize=8)
def own_addresses(helpdesk: HelpdeskSettings) -> OwnAddresses:
    """The helpdesk's own addresses for these (frozen) settings, built once rather than per mail."""
    return OwnAddresses.from_settings(helpdesk)

