"""The one parser entry: raw bytes in, a frozen InboundMessage out, or UnparseableMessage.

It reads with the stdlib's compat32 policy, which never raises while a header is read (the modern
policy raises IndexError or AttributeError on real mail), and does every decoding step itself,
tolerantly (mailgate.decoding). Every string in the result is clean for any database and bounded
in length; the raw bytes are kept whole beside it, so nothing cut here is lost.
"""

from __future__ import annotations

import email
import hashlib
import re
from datetime import datetime, timezone
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from core.addresses import Address, try_normalize
from core.errors import UnparseableMessage
from core.inbound import Envelope, InboundMessage
from mailgate.dsn import read_bounce
from mailgate.decoding import clean_text, header_text, raw_header_text
from mailgate.mime_parts import read_content

MAX_ID = 998  # the width of messages.message_id and thread_keys.message_id
MAX_REFERENCES = 100  # the thread's root and the newest ids are what threading needs
MAX_SUBJECT = 998
MAX_HEADERS = 1_000
MAX_HEADER_VALUE = 16_384
MAX_ADDRESS_FIELD = 32_768  # the stdlib's address parser is pure Python: bound its input
MAX_ADDRESS = 254  # RFC 5321's limit on a path; longer is no mailbox
MAX_REASON = 500

_BOM = b"\xef\xbb\xbf"
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_OBSOLETE_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:", re.MULTILINE)
_MSGID = re.compile(r"<[^<>\s]+>")
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
_BULK_PRECEDENCE = {"bulk", "junk", "list"}
_ROBOT_LOCALPARTS = {"mailer-daemon", "postmaster"}

Fields = dict[str, list[str]]


def parse_message(raw: bytes, envelope: Envelope) -> InboundMessage:
    """Read raw mail; whatever cannot become a message is UnparseableMessage, never another error."""
    if not raw.strip():
        raise UnparseableMessage("empty message")
    try:
        return _build(_read(raw), raw, envelope)
    except UnparseableMessage:
        raise
    except RecursionError as exc:
        raise UnparseableMessage("MIME structure nested too deeply to read") from exc
    except Exception as exc:  # the stdlib raises anything from IndexError to LookupError on odd mail
        raise UnparseableMessage(clean_text(f"{type(exc).__name__}: {exc}")[:MAX_REASON]) from exc


def _read(raw: bytes) -> Message:
    """The stdlib's reading of the bytes; a leading byte-order mark is not part of the mail."""
    message = email.message_from_bytes(_accept_obsolete_names(raw.removeprefix(_BOM)), policy=compat32)
    if not message.keys():
        raise UnparseableMessage("no header fields")
    return message


def _accept_obsolete_names(raw: bytes) -> bytes:
    """`Subject  : x` is obsolete but valid (RFC 5322 4.5.8); the stdlib would end the header there."""
    blank = _HEADER_END.search(raw)
    end = blank.start() if blank else len(raw)
    head = raw[:end]
    return _OBSOLETE_NAME.sub(rb"\1:", head) + raw[end:] if _OBSOLETE_NAME.search(head) else raw


def _build(message: Message, raw: bytes, envelope: Envelope) -> InboundMessage:
    pairs = [(raw_header_text(name), raw_header_text(value)) for name, value in message.raw_items()]
    fields: Fields = {}
    for name, value in pairs:
        fields.setdefault(name.lower(), []).append(value)
    sender = _sender(fields, envelope)
    content = read_content(message)
    return InboundMessage(
        message_id=_message_id(fields, raw),
        sender=sender,
        subject=header_text(_first(fields, "subject"))[:MAX_SUBJECT],
        envelope=envelope,
        raw=raw,
        to=tuple(_addresses(fields, "to")),
        cc=tuple(_addresses(fields, "cc")),
        in_reply_to=tuple(_ids(fields, "in-reply-to")[:MAX_REFERENCES]),
        references=tuple(_references(fields)),
        date=_date(_first(fields, "date")),
        text=content.text,
        html=content.html,
        headers=tuple((name[:MAX_HEADER_VALUE], value[:MAX_HEADER_VALUE]) for name, value in pairs[:MAX_HEADERS]),
        attachments=content.attachments,
        defects=content.defects,
        is_automated=_is_automated(fields, sender, envelope),
        bounce=read_bounce(message),
    )


def _first(fields: Fields, name: str, default: str = "") -> str:
    values = fields.get(name)
    return values[0] if values else default


def _addresses(fields: Fields, name: str) -> list[Address]:
    found: dict[str, Address] = {}
    for value in fields.get(name, []):
        for address in _mailboxes(value[:MAX_ADDRESS_FIELD]):
            found.setdefault(address.email, address)
    return list(found.values())


def _mailboxes(value: str) -> list[Address]:
    """The field's mailboxes; the bare addresses in it when it is too broken to parse."""
    try:
        pairs = getaddresses([value])
    except RecursionError:  # nested comments or groups recurse once per level in the stdlib
        pairs = []
    found = [a for a in (_mailbox(addr, display) for display, addr in pairs) if a]
    return found or [a for a in (_mailbox(addr, "") for addr in _BARE_ADDRESS.findall(value)) if a]


def _mailbox(addr: str, display: str) -> Address | None:
    normalized = try_normalize(addr)
    if not normalized or len(normalized) > MAX_ADDRESS:
        return None
    return Address(normalized, header_text(display))


def _sender(fields: Fields, envelope: Envelope) -> Address:
    for header in ("from", "sender", "reply-to"):
        found = _addresses(fields, header)
        if found:
            return found[0]
    fallback = try_normalize(envelope.mail_from)
    if fallback:
        return Address(fallback)
    raise UnparseableMessage("no sender address in From, Sender, Reply-To or the envelope")


def _ids(fields: Fields, name: str) -> list[str]:
    found: list[str] = []
    for text in fields.get(name, []):
        found.extend(_MSGID.findall(text) or [f"<{t.strip('<>')}>" for t in text.split() if "@" in t])
    return list(dict.fromkeys(t[:MAX_ID] for t in found))


def _references(fields: Fields) -> list[str]:
    ids = _ids(fields, "references")
    return ids if len(ids) <= MAX_REFERENCES else ids[:1] + ids[-(MAX_REFERENCES - 1):]


def _message_id(fields: Fields, raw: bytes) -> str:
    """The mail's own id; one made from its bytes when it has none, so a re-delivery still dedups."""
    ids = _ids(fields, "message-id")
    if ids:
        return ids[0]
    return f"<{hashlib.sha256(raw).hexdigest()}@no-message-id.postdesk.invalid>"


def _date(value: str) -> datetime | None:
    """The Date header in UTC; None when missing, unreadable or out of any database's range."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (TypeError, ValueError, LookupError, OverflowError):
        return None


def _is_automated(fields: Fields, sender: Address, envelope: Envelope) -> bool:
    """Mail from a robot: never to be answered automatically (RFC 3834, plus common practice)."""
    auto = _first(fields, "auto-submitted", "no").strip().lower()
    precedence = _first(fields, "precedence").strip().lower()
    null_sender = envelope.source == "smtp" and envelope.mail_from in ("", "<>")
    return (
        (auto != "" and not auto.startswith("no"))
        or precedence in _BULK_PRECEDENCE
        or "list-id" in fields
        or null_sender
        or sender.email.split("@")[0] in _ROBOT_LOCALPARTS
    )
