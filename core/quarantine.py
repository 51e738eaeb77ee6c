"""Keeps mail that cannot become a ticket message: raw, with the reason, never dropped."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.inbound import Envelope
from core.models import QuarantineItem

log = logging.getLogger(__name__)


def quarantine_raw(session: Session, raw: bytes, envelope: Envelope, received_at: datetime, reason: str) -> None:
    log.warning("quarantined mail from %r: %s", envelope.mail_from, reason)
    session.add(QuarantineItem(received_at=received_at, source=envelope.source, mail_from=envelope.mail_from,
                               rcpt_tos=list(envelope.rcpt_tos), reason=reason[:4000], raw=raw))


def quarantined(session: Session) -> list[dict[str, object]]:
    """What is kept in quarantine, newest first: when, from where, for whom, and why it could not be filed."""
    return [{"id": q.id, "received": q.received_at.isoformat(), "source": q.source, "mail_from": q.mail_from,
             "rcpt_tos": q.rcpt_tos, "reason": q.reason}
            for q in session.scalars(select(QuarantineItem).order_by(QuarantineItem.id.desc()))]
