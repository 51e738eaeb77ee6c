"""Reads a delivery status notification (RFC 3464): the failed mail's Message-ID and recipients."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from core.addresses import try_normalize
from core.inbound import BounceReport

_MSGID = re.compile(r"<[^<>\s]+>")
_FAILED_ACTIONS = {"failed"}


def read_bounce(message: Message) -> BounceReport | None:
    """The report in a multipart/report; report-type=delivery-status, or None for any other mail."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return None
    parts = message.get_payload()
    if not isinstance(parts, list):
        return None
    failed: list[str] = []
    status = ""
    originals: list[str] = []
    for part in parts:
        if not isinstance(part, Message):
            continue
        kind = part.get_content_type()
        if kind == "message/delivery-status":
            for block in _status_blocks(part):
                if str(block.get("action", "")).strip().lower() in _FAILED_ACTIONS:
                    recipient = _recipient(str(block.get("final-recipient", "") or block.get("original-recipient", "")))
                    if recipient:
                        failed.append(recipient)
                    status = status or str(block.get("status", "")).strip()
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            originals.extend(_original_ids(part))
    if not originals:
        return None
    return BounceReport(tuple(dict.fromkeys(originals)), tuple(dict.fromkeys(failed)), status[:64])


def _status_blocks(part: Message) -> list[Message]:
    """The per-message and per-recipient field blocks; the stdlib gives them as sub-messages."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", text) if block.strip()]


def _recipient(value: str) -> str | None:
    """`rfc822; someone@example.com` -> the normalised address."""
    return try_normalize(value.split(";", 1)[-1].strip())


def _original_ids(part: Message) -> list[str]:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        headers: Message = payload[0]
    else:
        raw = payload if isinstance(payload, str) else ""
        headers = HeaderParser().parsestr(raw)
    return _MSGID.findall(str(headers.get("message-id", "")))
