"""Keeps mail that cannot become a ticket message: raw, with the reason, never dropped."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from core.inbound import Envelope
from core.models import QuarantineItem

log = logging.getLogger(__name__)


def quarantine_raw(session: Session, raw: bytes, envelope: Envelope, received_at: datetime, reason: str) -> None:
    log.warning("quarantined mail from %r: %s", envelope.mail_from, reason)
    session.add(QuarantineItem(received_at=received_at, source=envelope.source, mail_from=envelope.mail_from,
                               rcpt_tos=list(envelope.rcpt_tos), reason=reason[:4000], raw=raw))
