"""Message-IDs the helpdesk generates: unguessable, so a reply naming one proves its sender saw our mail."""

from __future__ import annotations

import secrets


def new_message_id(hostname: str) -> str:
    """`<random@hostname>` with 128 bits from the OS's cryptographic source."""
    return f"<{secrets.token_urlsafe(16)}.pd@{hostname}>"
