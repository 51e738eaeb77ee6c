"""Cleans a worker's reply before a customer sees it: no quoted history, no signature, no worker address.

Customers never learn a worker's address, so whatever the worker's client added that could carry it
(an attribution line "On ... Jane <jane@corp> wrote:", a quoted block, a signature) is cut, and any
address that still appears in the text, in any written form, is replaced (core.privacy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ATTRIBUTION = re.compile(
    r"^(on\b.*\bwrote:?|am\b.*\bschrieb\b.*:?|le\b.*\ba écrit\s*:?|-{2,}\s*original message\s*-{2,}|"
    r"_{5,}|from:\s.*|-----\s*forwarded message\s*-----)\s*$", re.IGNORECASE)
_SIGNATURE = re.compile(r"^-- ?$")
REDACTED = "[address removed]"


def clean_worker_text(text: str, private_addresses: Iterable[str]) -> str:
    """The new text of a worker's reply, safe to relay."""
    from core.privacy import PrivateAddresses  # which imports REDACTED from here

    return PrivateAddresses.of(private_addresses).redact(new_text(text))


def new_text(text: str) -> str:
    """What the worker wrote, without what their client added below it: the quoted history (a
    notification quoted whole, when a `#comment` answers one) and the signature."""
    kept: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if _SIGNATURE.match(line) or _ATTRIBUTION.match(stripped) or stripped.startswith(">"):
            break
        kept.append(line)
    return "\n".join(kept).strip("\n")
