"""The one parser entry: raw bytes in, a frozen InboundMessage out, or UnparseableMessage."""

from __future__ import annotations

import email.message
import hashlib
import logging
import re
from datetime import datetime, timezone
from email.header import decode_header, make_header
from email.utils import getaddresses
from typing import Any

import html2text
import mailparser

from core.addresses import Address, try_normalize
from core.errors import UnparseableMessage
from core.inbound import Envelope, InboundAttachment, InboundMessage

log = logging.getLogger(__name__)

_MSGID = re.compile(r"<[^<>\s]+>")
_BULK_PRECEDENCE = {"bulk", "junk", "list"}
_ROBOT_LOCALPARTS = {"mailer-daemon", "postmaster"}


def parse_message(raw: bytes, envelope: Envelope) -> InboundMessage:
    """Read raw mail; anything mail-parser or the stdlib cannot make sense of is UnparseableMessage."""
    if not raw.strip():
        raise UnparseableMessage("empty message")
    try:
        parsed = mailparser.parse_from_bytes(raw)
        return _build(parsed, raw, envelope)
    except UnparseableMessage:
        raise
    except Exception as exc:  # mail-parser and email raise anything from IndexError to LookupError
        raise UnparseableMessage(f"{type(exc).__name__}: {exc}") from exc


def _build(parsed: mailparser.MailParser, raw: bytes, envelope: Envelope) -> InboundMessage:
    message = parsed.message
    if message is None or not message.keys():
        raise UnparseableMessage("no header fields")
    sender = _sender(message, envelope)
    text, html = _bodies(parsed)
    return InboundMessage(
        message_id=_message_id(message, raw),
        sender=sender,
        subject=_one_line(str(parsed.subject or "")),
        envelope=envelope,
        raw=raw,
        to=tuple(_addresses(message, "to")),
        cc=tuple(_addresses(message, "cc")),
        in_reply_to=tuple(_ids(message.get_all("in-reply-to", []))),
        references=tuple(_ids(message.get_all("references", []))),
        date=_date(parsed.date),
        text=text,
        html=html,
        headers=tuple((name, _header_str(value)) for name, value in message.items()),
        attachments=tuple(_attachments(message)),
        defects=tuple(_defects(parsed)),
        is_automated=_is_automated(message, sender, envelope),
    )


def _header_str(value: Any) -> str:
    return str(value)


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _addresses(message: email.message.Message, name: str) -> list[Address]:
    values = [_header_str(v) for v in message.get_all(name, [])]
    found: list[Address] = []
    for display, addr in getaddresses(values):
        normalized = try_normalize(addr)
        if normalized and all(a.email != normalized for a in found):
            found.append(Address(normalized, _decoded(display)))
    return found


def _decoded(text: str) -> str:
    try:
        return _one_line(str(make_header(decode_header(text))))
    except Exception:  # a broken encoded-word: keep it as written
        return _one_line(text)


def _sender(message: email.message.Message, envelope: Envelope) -> Address:
    for header in ("from", "sender", "reply-to"):
        found = _addresses(message, header)
        if found:
            return found[0]
    fallback = try_normalize(envelope.mail_from)
    if fallback:
        return Address(fallback)
    raise UnparseableMessage("no sender address in From, Sender, Reply-To or the envelope")


def _ids(values: list[Any]) -> list[str]:
    found: list[str] = []
    for value in values:
        text = _header_str(value)
        tokens = _MSGID.findall(text) or [f"<{t}>" for t in text.split() if "@" in t]
        found.extend(tokens)
    return list(dict.fromkeys(t[:998] for t in found))


def _message_id(message: email.message.Message, raw: bytes) -> str:
    """The mail's own id; one made from its bytes when it has none, so a re-delivery still dedups."""
    ids = _ids(message.get_all("message-id", []))
    if ids:
        return ids[0]
    return f"<{hashlib.sha256(raw).hexdigest()}@no-message-id.postdesk.invalid>"


def _date(value: datetime | None) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _bodies(parsed: mailparser.MailParser) -> tuple[str, str]:
    text = "\n".join(parsed.text_plain).strip("\r\n")
    html = "\n".join(parsed.text_html)
    if not text and html:
        text = html_to_text(html)
    return text, html


def html_to_text(html: str) -> str:
    converter = html2text.HTML2Text(bodywidth=0)
    converter.ignore_images = True
    return converter.handle(html).strip()


def _attachments(message: email.message.Message) -> list[InboundAttachment]:
    found: list[InboundAttachment] = []
    for part in message.walk():
        if part.is_multipart() or not _is_attachment(part):
            continue
        data = _part_bytes(part)
        if data is None:
            continue
        filename = _decoded(part.get_filename() or "") if part.get_filename() else ""
        found.append(InboundAttachment(filename, part.get_content_type(), data))
    return found


def _is_attachment(part: email.message.Message) -> bool:
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")


def _part_bytes(part: email.message.Message) -> bytes | None:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].as_bytes()
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else None


def _defects(parsed: mailparser.MailParser) -> list[str]:
    return sorted({str(c) for c in parsed.defects_categories})


def _is_automated(message: email.message.Message, sender: Address, envelope: Envelope) -> bool:
    """Mail from a robot: never to be answered automatically (RFC 3834, plus common practice)."""
    auto = _header_str(message.get("auto-submitted", "no")).strip().lower()
    precedence = _header_str(message.get("precedence", "")).strip().lower()
    null_sender = envelope.source == "smtp" and envelope.mail_from in ("", "<>")
    return (
        (auto != "" and not auto.startswith("no"))
        or precedence in _BULK_PRECEDENCE
        or message.get("list-id") is not None
        or null_sender
        or sender.email.split("@")[0] in _ROBOT_LOCALPARTS
    )
