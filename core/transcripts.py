"""Encrypted transcripts: a closed ticket's public conversation, sealed under a key that only its link holds.

The conversation (core.transcript) is rendered to one HTML document (templates/transcript.html.j2) and
encrypted with AES-256-GCM under a fresh random key; only the nonce and the ciphertext are stored. The
key travels in the link's fragment (`BASE_URL/transcripts/ID#KEY`), which a browser never sends, and the
page decrypts it there (web/static/transcript.js): the service keeps a row it cannot read. The public
id is the ciphertext's associated data, so a row copied under another id no longer opens.

Neither the key nor the link is ever logged or stored: the one copy is the mail that carries it. A
row names no ticket, so the ticket's purge leaves it; core.purge removes it after
`[transcripts] retention_days`, and from then on the link answers 404.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.compose import SHIPPED, Templates
from core.models import EncryptedTranscript
from core.transcript import Transcript

KEY_BITS = 256
NONCE_BYTES = 12  # GCM's own size; a key seals one document only, so a random nonce never repeats under it
PUBLIC_ID_BYTES = 16  # 128 random bits: a link nobody guesses, though the row alone reveals nothing anyway


@dataclass(frozen=True)
class SealedTranscript:
    """What the page needs to decrypt a transcript in the browser: never the key."""

    public_id: str
    nonce: bytes
    ciphertext: bytes


def seal_transcript(session: Session, transcript: Transcript, base_url: str, now: datetime,
                    templates: Templates = SHIPPED) -> str:
    """Store the conversation encrypted under a fresh key and return its link, the one place the key is kept.

    Rendered in the group's templates (its language).
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # loaded by the first close that seals

    document = templates.document("transcript", transcript=transcript)
    key = AESGCM.generate_key(bit_length=KEY_BITS)
    public_id = secrets.token_urlsafe(PUBLIC_ID_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, document.encode(), public_id.encode())
    session.add(EncryptedTranscript(public_id=public_id, nonce=nonce, ciphertext=ciphertext, created_at=now))
    return f"{base_url}/transcripts/{public_id}#{_fragment(key)}"


def _fragment(key: bytes) -> str:
    """The key as the link's fragment: URL-safe base64 without padding, as the page reads it back."""
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def sealed_transcript(session: Session, public_id: str, kept_since: datetime) -> SealedTranscript | None:
    """The transcript behind a link, or None when there is none or it is past its retention (the purge
    may not have run yet: the link stops working on time all the same)."""
    row = session.scalars(select(EncryptedTranscript).where(EncryptedTranscript.public_id == public_id,
                                                            EncryptedTranscript.created_at > kept_since)).first()
    return None if row is None else SealedTranscript(row.public_id, row.nonce, row.ciphertext)
