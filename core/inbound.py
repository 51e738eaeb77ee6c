"""The frozen value every inbound mail becomes at the edge; nothing downstream reads raw headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.addresses import Address


@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Envelope:
    """What the SMTP session (or the MTA pipe) said about the mail, as opposed to its headers."""

    source: str
    mail_from: str = ""  # "<>": the null reverse-path; "": none given (for "smtp", also the null path)
    rcpt_tos: tuple[str, ...] = ()

    @property
    def silent(self) -> bool:
        """Mail brought in by `postdesk import`: a migration, filed without writing to anyone."""
        return self.source == IMPORT_SOURCE


IMPORT_SOURCE = "import"  # filed silently (Envelope.silent)
IMPORT_NOTIFY_SOURCE = "import-notify"  # `postdesk import --notify`: acknowledged and notified as if it came now


@dataclass(frozen=True)
class BounceReport:
    """A delivery status notification (RFC 3464): which of our mails failed, for whom."""

    original_message_ids: tuple[str, ...]
    failed_recipients: tuple[str, ...] = ()
    status: str = ""


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    sender: Address
    subject: str
    envelope: Envelope
    raw: bytes
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    date: datetime | None = None
    text: str = ""
    html: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[InboundAttachment, ...] = ()
    defects: tuple[str, ...] = field(default=())
    is_automated: bool = False
    bounce: BounceReport | None = None
    # the mailing list the mail came through (List-Id), and the list's own addresses (List-Post, To/Cc)
    mailing_list: str = ""
    list_addresses: tuple[str, ...] = ()
    # Where an automatic reply may go (RFC 3834 section 4), normalised: the envelope sender, else the
    # topmost Return-Path field; "" when there is none or it is the null path <>. Never the From.
    return_path: str = ""

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Ids this mail answers, most telling first: In-Reply-To, then References newest first."""
        ordered = list(self.in_reply_to) + list(reversed(self.references))
        return tuple(dict.fromkeys(i for i in ordered if i != self.message_id))
