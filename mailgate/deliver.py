"""`postdesk deliver`: one message from an MTA pipe, through the same spool and pipeline."""

from __future__ import annotations

from core.db import Database
from core.errors import MessageTooLarge
from core.inbound import Envelope
from core.settings import Settings
from mailgate.runner import SpoolRunner
from mailgate.spool import spool_messages

EX_OK = 0
EX_TEMPFAIL = 75  # sendmail's "try again later": the MTA keeps the message queued


def pipe_envelope(mail_from: str | None, rcpt_tos: tuple[str, ...]) -> Envelope:
    """What the MTA said: --from missing is no envelope sender (the mail's Return-Path stands),
    --from "" or "<>" is the null reverse-path (a bounce or other robot: never answered)."""
    if mail_from is not None and mail_from.strip() in ("", "<>"):
        mail_from = "<>"
    return Envelope("deliver", mail_from or "", rcpt_tos)


def deliver(db: Database, settings: Settings, raw: bytes, envelope: Envelope) -> int:
    """Spool durably (that is the acknowledgement), then file what is spooled; returns the spool id."""
    if len(raw) > settings.smtp.max_message_size:
        raise MessageTooLarge(len(raw), settings.smtp.max_message_size)
    (spool_id,) = spool_messages(db, [(raw, envelope)])
    SpoolRunner(db, settings).drain()
    return spool_id
