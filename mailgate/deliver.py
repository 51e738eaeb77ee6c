"""`postdesk deliver`: one message from an MTA pipe, through the same spool and pipeline."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from core.db import Database
from core.errors import MessageTooLarge, PostdeskError, StorageError
from core.inbound import Envelope
from core.settings import Settings
from mailgate.runner import SpoolRunner
from mailgate.spool import spool_messages

log = logging.getLogger(__name__)

EX_OK = 0
EX_TEMPFAIL = 75  # sendmail's "try again later": the MTA keeps the message queued


def pipe_envelope(mail_from: str | None, rcpt_tos: tuple[str, ...]) -> Envelope:
    """What the MTA said: --from missing is no envelope sender (the mail's Return-Path stands),
    --from "" or "<>" is the null reverse-path (a bounce or other robot: never answered)."""
    if mail_from is not None and mail_from.strip() in ("", "<>"):
        mail_from = "<>"
    return Envelope("deliver", mail_from or "", rcpt_tos)


def deliver(db: Database, settings: Settings, raw: bytes, envelope: Envelope) -> int:
    """Spool durably (that is the acknowledgement), then file what is spooled; returns the spool id.

    A failure to file after the spool committed is no failure of the delivery: the message is
    stored, and the daemon's spool runner (or the next `deliver`) files it.
    """
    if len(raw) > settings.smtp.max_message_size:
        raise MessageTooLarge(len(raw), settings.smtp.max_message_size)
    (spool_id,) = spool_messages(db, [(raw, envelope)])
    try:
        SpoolRunner(db, settings).drain()
    except (StorageError, SQLAlchemyError) as exc:
        log.warning("spooled as %d, to be filed later: %s", spool_id, one_line_error(exc))
    return spool_id


def one_line_error(error: BaseException) -> str:
    """An error as one line for the MTA's log; a database error in the driver's own words."""
    if isinstance(error, PostdeskError):
        text = str(error)
    else:
        cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's exception
        text = f"{type(cause).__name__}: {cause}"
    return " ".join(text.split())
