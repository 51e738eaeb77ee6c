"""The one parser entry: raw bytes in, a frozen InboundMessage out, or UnparseableMessage.

mail-parser reads the mail (with the stdlib's compat32 policy underneath, which never raises while
a header is read) and decodes the body (mailgate.mime_parts). The header fields are taken from the
Message it built and decoded here, tolerantly (mailgate.decoding). Whatever mail-parser cannot read
is UnparseableMessage, so it goes to quarantine. Every string in the result is clean for any
database and bounded in length; the raw bytes are kept whole beside it, so nothing cut here is lost.
"""

from __future__ import annotations

import email
import hashlib
import logging
import re
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from mailparser import MailParser
from mailparser.const import ADDRESSES_HEADERS
from mailparser.exceptions import MailParserRecursionError

from core.addresses import Address, try_normalize
from core.errors import UnparseableMessage
from core.inbound import Envelope, InboundMessage
from mailgate.dsn import read_bounce
from mailgate.decoding import clean_text, header_text, is_punycode, raw_header_charset, raw_header_text
from mailgate.mime_parts import MAX_PARTS, read_content

# mail-parser warns about every part it does not show as text (each image, each delivery report)
# and logs every read at DEBUG: noise at any volume. Its errors still reach the log.
logging.getLogger("mailparser").setLevel(logging.ERROR)

MAX_ID = 998  # the width of messages.message_id and thread_keys.message_id
MAX_REFERENCES = 100  # the thread's root and the newest ids are what threading needs
MAX_SUBJECT = 998
MAX_HEADERS = 1_000
MAX_HEADER_VALUE = 16_384
MAX_ADDRESS_FIELD = 32_768  # the stdlib's address parser is pure Python: bound its input
MAX_ADDRESS = 254  # RFC 5321's limit on a path; longer is no mailbox
MAX_REASON = 500
# mail-parser reads every header in full (addresses ~1.5 s a MB; many encoded words, quadratic time).
# Postfix refuses more than 100 KiB of headers by default, Exchange Online more than 256 KiB.
MAX_HEADER_SECTION = 256 * 1024

_BOM = b"\xef\xbb\xbf"
_PUNYCODE = re.compile(rb"punycode", re.IGNORECASE)
_EXTENDED_PARAMETER = re.compile(rb"\*(?:[0-9]+\*?)?[ \t]*=")  # RFC 2231: %-encoded, or split in pieces
_ENCODED_WORD_CHARSET = re.compile(rb"=\?([^?]*)\?[bBqQ]\?")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_NOT_A_HEADER_LINE = re.compile(rb"^(?![\x21-\x39\x3b-\x7e]+[ \t]*:|[ \t])", re.MULTILINE)  # blank, or body
_OBSOLETE_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]+:", re.MULTILINE)
_RECEIVED_NAME = re.compile(rb"^(?=received[ \t]*:)", re.MULTILINE | re.IGNORECASE)
# Received fields are renamed under this unguessable prefix while mail-parser reads the mail, and
# named back after: postdesk reads no trace fields, and mail-parser's reading of them was a third
# of all parsing time. Unguessable, so no field a sender writes can pass for a renamed one.
_HIDDEN = b"X-" + secrets.token_hex(8).encode() + b"-"
_HIDDEN_TEXT = _HIDDEN.decode()
_MSGID = re.compile(r"<[^<>\s]+>")
_MAILTO = re.compile(r"mailto:([^?>\s,]+)", re.IGNORECASE)
_BARE_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
_ROBOT_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_ROBOT_LOCALPARTS = {"mailer-daemon", "postmaster"}
_AUTOREPLY_FIELDS = ("x-autoreply", "x-autorespond", "x-auto-response-suppress")  # set by vacation robots, Exchange
_ENVELOPE_ALWAYS_SAYS = {"smtp"}  # MAIL FROM is mandatory, so an empty one is the null path
_NULL_PATH = "<>"
_NULL_PATH_TEXT = re.compile(r"\s*(?:\([^()]*\)\s*)*(?:<\s*>\s*(?:\([^()]*\)\s*)*)?")  # <>, blank, comments

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
        raise UnparseableMessage(_reason("", exc)) from exc


def _read(raw: bytes) -> MailParser:
    """mail-parser's reading of the bytes; a leading byte-order mark is not part of the mail."""
    mail = _ready_for_mail_parser(raw.removeprefix(_BOM))
    if _header_section_size(mail) > MAX_HEADER_SECTION:
        raise UnparseableMessage(f"header section over {MAX_HEADER_SECTION // 1024} KiB")
    if _declares_punycode(mail):
        raise UnparseableMessage("a charset names the punycode codec, which is no charset and slow to run")
    try:
        parsed = _MailParts.from_bytes(mail)
    except (RecursionError, MailParserRecursionError) as exc:
        raise UnparseableMessage("MIME structure nested too deeply to read") from exc
    except Exception as exc:  # mail-parser raises AttributeError and others on some malformed mail
        raise UnparseableMessage(_reason("mail-parser cannot read it: ", exc)) from exc
    if parsed.message is None or not parsed.message.keys():
        raise UnparseableMessage("no header fields")
    return parsed


class _MailParts(MailParser):
    """mail-parser's reading of parts, text and defects, without the summary dictionary it also builds.

    postdesk reads the message, the text and HTML parts and the defects; the summary (`.mail`, every
    header decoded twice over) cost a fifth of each parse, and nothing here reads it.
    """

    def _make_mail(self, complete: bool = True) -> dict[str, object]:
        return {}

    def _build_header_index(self) -> dict[str, list[object]]:
        """Its index of header fields, less the address fields: it parses every one of them while it
        reads the mail (a fifth of all parsing time), and postdesk reads addresses itself (_addresses)."""
        index: dict[str, list[object]] = super()._build_header_index()
        for name in ADDRESSES_HEADERS:
            index.pop(name, None)
        return index


def _reason(prefix: str, exc: Exception) -> str:
    return clean_text(f"{prefix}{type(exc).__name__}: {exc}")[:MAX_REASON]


def _ready_for_mail_parser(raw: bytes) -> bytes:
    """`Subject  : x` is obsolete but valid (RFC 5322 4.5.8); the stdlib would end the header there.

    Received fields are hidden from mail-parser under _HIDDEN (see there); _field_pairs names them back.
    """
    blank = _HEADER_END.search(raw)
    end = blank.start() if blank else len(raw)
    head = raw[:end]
    if _OBSOLETE_NAME.search(head):
        head = _OBSOLETE_NAME.sub(rb"\1:", head)
    return _RECEIVED_NAME.sub(_HIDDEN, head) + raw[end:]


def _header_section_size(raw: bytes) -> int:
    """Bytes up to the first line that is neither a header field nor its continuation."""
    end = _NOT_A_HEADER_LINE.search(raw)
    return end.start() if end else len(raw)


def _declares_punycode(raw: bytes) -> bool:
    """A charset label that is the punycode codec: mail-parser would decode with it, in quadratic time.

    Only mail that names punycode, or has RFC 2231 parameters (which can spell it %-encoded or in
    pieces), is read a second time to look at the labels as the stdlib resolves them.
    """
    literal = _PUNYCODE.search(raw) is not None
    if not literal and not _EXTENDED_PARAMETER.search(raw):
        return False
    if literal and any(is_punycode(label.decode("latin-1")) for label in _ENCODED_WORD_CHARSET.findall(raw)):
        return True
    message = email.message_from_bytes(raw, policy=compat32)
    return any(is_punycode(label) for part in message.walk() for label in _charset_labels(part))


def _charset_labels(part: Message) -> Iterator[str]:
    """The charset parameter, and the charset of every RFC 2231 parameter, of one part."""
    for header in ("content-type", "content-disposition"):
        for name, value in part.get_params([], header=header):
            if isinstance(value, tuple):  # RFC 2231: (charset, language, text)
                yield str(value[0] or "")
                value = str(value[2])
            if name == "charset":
                yield value


def _build(parsed: MailParser, raw: bytes, envelope: Envelope) -> InboundMessage:
    message = parsed.message
    charset = raw_header_charset(_all_header_values(message), _declared_charsets(message))
    pairs = _field_pairs(message, charset)
    fields: Fields = {}
    for name, value in pairs:
        fields.setdefault(name.lower(), []).append(value)
    sender = _sender(fields, envelope)
    reverse_path = _reverse_path(fields, envelope)
    content = read_content(parsed, charset)
    return InboundMessage(
        message_id=_message_id(fields, raw),
        sender=sender,
        subject=header_text(_first(fields, "subject")[:MAX_HEADER_VALUE])[:MAX_SUBJECT],
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
        is_automated=_is_automated(fields, sender, reverse_path),
        bounce=read_bounce(parsed.message),
        mailing_list=_mailing_list(fields),
        list_addresses=_list_addresses(fields),
        return_path="" if reverse_path == _NULL_PATH else reverse_path,
    )


def _mailing_list(fields: Fields) -> str:
    """The List-Id (RFC 2919) the mail came through, or "" for mail sent straight to us."""
    found = _first(fields, "list-id").strip()
    return found[:MAX_ADDRESS] if found else ("list" if "list-post" in fields else "")


def _list_addresses(fields: Fields) -> tuple[str, ...]:
    """The list's own addresses (List-Post mailto:), never to become a ticket's recipients."""
    found = (try_normalize(m) for value in fields.get("list-post", [])
             for m in _MAILTO.findall(value[:MAX_ADDRESS_FIELD]))
    return tuple(dict.fromkeys(a for a in found if a))


def _field_pairs(message: Message, charset: str | None) -> list[tuple[str, str]]:
    """Every header field as text, in order, under the name the mail gave it; raw 8-bit bytes in `charset`."""
    return [(raw_header_text(name).removeprefix(_HIDDEN_TEXT), raw_header_text(value, charset))
            for name, value in message.raw_items()]


def _all_header_values(message: Message) -> Iterator[str]:
    """The header values the sender's client wrote: the mail's and its MIME parts', less trace fields."""
    for part in _parts(message):
        for name, value in part.raw_items():
            if not name.startswith(_HIDDEN_TEXT):
                yield value


def _declared_charsets(message: Message) -> Iterator[str | None]:
    """The charsets the mail's parts declare, read only when raw 8-bit header bytes need a hint."""
    for part in _parts(message):
        yield part.get_content_charset()


def _parts(message: Message) -> Iterator[Message]:
    """The mail and its MIME parts, at most MAX_PARTS, without recursion; not inside attached mails."""
    stack = [message]
    for _ in range(MAX_PARTS):
        if not stack:
            return
        part = stack.pop()
        yield part
        if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
            stack.extend(reversed([child for child in part.get_payload() if isinstance(child, Message)]))


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


def _reverse_path(fields: Fields, envelope: Envelope) -> str:
    """Where automatic replies may go (RFC 3834 4): an address, _NULL_PATH, or "" when none is known.

    The envelope sender when the source gave one (SMTP always does); else the topmost Return-Path,
    which the delivering MTA wrote. Never the From: that is the author, not who takes the bounces.
    """
    if envelope.source in _ENVELOPE_ALWAYS_SAYS or envelope.mail_from:
        return _path(envelope.mail_from)
    values = fields.get("return-path")
    return _path(values[0]) if values else ""


def _path(text: str) -> str:
    """One reverse-path, normalised; _NULL_PATH for <>; "" when it holds no usable address."""
    if _NULL_PATH_TEXT.fullmatch(text[:MAX_ADDRESS_FIELD]):
        return _NULL_PATH
    found = _mailboxes(text[:MAX_ADDRESS_FIELD])
    return found[0].email if found else ""


def _is_automated(fields: Fields, sender: Address, reverse_path: str) -> bool:
    """Mail from a robot: never to be answered automatically (RFC 3834, plus common practice)."""
    auto = _first(fields, "auto-submitted", "no").strip().lower()
    precedence = _first(fields, "precedence").strip().lower()
    return (
        (auto != "" and not auto.startswith("no"))
        or precedence in _ROBOT_PRECEDENCE
        or "list-id" in fields
        or any(name in fields for name in _AUTOREPLY_FIELDS)
        or reverse_path == _NULL_PATH
        or sender.email.split("@")[0] in _ROBOT_LOCALPARTS
    )
