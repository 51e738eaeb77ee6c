"""The readable content of a mail mail-parser has read: body text and HTML, attachments, defects.

mail-parser decodes the body. Where it is known to misread one (a charset it decodes wrongly or not
at all, text inside a part that is kept whole, a multipart without a boundary) the body is read
again here from the part bytes. Attachments always come from the MIME tree mail-parser built, as
exact bytes (mail-parser hands text attachments back decoded). The walk uses its own stack and
stops at MAX_DEPTH and MAX_PARTS, so hostile structure costs a defect, not the gateway; one part
that cannot be read costs only itself.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

import html2text
from mailparser import MailParser

from core.inbound import InboundAttachment
from mailgate.decoding import clean_text, decode_bytes, header_text, reads_as_ascii

log = logging.getLogger(__name__)

MAX_DEPTH = 40
MAX_PARTS = 1_000  # each becomes rows in the database; the raw mail keeps any beyond
MAX_CONTENT_TYPE = 255  # the width of attachments.content_type
MAX_FILENAME_INPUT = 16_384  # decoding encoded words takes quadratic time in their number
MAX_HTML_TO_TEXT = 300_000  # html2text is pure Python (~2 s a MB): beyond this the text is cut
_CONTAINERS = ("message/rfc822", "message/global")
_BODY_TYPES = ("text/plain", "text/html")
_TAG = re.compile(r"<[^>]*>")
# C1 controls: Windows-1252 read as ISO-8859-1; ESC: ISO-2022 text passed through undecoded.
_MISDECODED = re.compile("[\x1b\x80-\x9f]")
_CHARSET_DEFECT = "CharsetDecodeDefect"


@dataclass(frozen=True)
class Content:
    text: str
    html: str
    attachments: tuple[InboundAttachment, ...]
    defects: tuple[str, ...]


@dataclass
class _Parts:
    bodies: list[Message] = field(default_factory=list)  # what a person reads, in document order
    attachments: list[InboundAttachment] = field(default_factory=list)
    defects: set[str] = field(default_factory=set)
    misread: bool = False  # mail-parser's body is known to be wrong for this mail


def read_content(parsed: MailParser) -> Content:
    """Everything a person reads in the mail, plus what was wrong with it."""
    parts = _walk(parsed.message)
    defects = parts.defects | {str(c) for c in parsed.defects_categories}
    text = clean_text("\n".join(parsed.text_plain).replace("\r\n", "\n")).strip("\n")
    html = clean_text("\n".join(parsed.text_html).replace("\r\n", "\n"))
    if parts.misread or _CHARSET_DEFECT in defects or _MISDECODED.search(text) or _MISDECODED.search(html):
        defects.discard(_CHARSET_DEFECT)  # mail-parser's verdict; the reading below gives its own
        text, html = _read_bodies(parts.bodies, defects)
    if not text.strip() and html:
        text = html_to_text(html, defects)
    return Content(text, html, tuple(parts.attachments), tuple(sorted(defects)))


def _walk(message: Message) -> _Parts:
    parts = _Parts()
    for part in _leaves(message, parts.defects):
        try:
            _sort(part, parts)
        except Exception as exc:  # the stdlib can fail anywhere in an odd part; keep the others
            log.debug("unreadable MIME part: %s: %s", type(exc).__name__, exc)
            parts.defects.add("UnreadablePartDefect")
    return parts


def _leaves(message: Message, defects: set[str]) -> Iterator[Message]:
    """Leaf parts in document order; an attached message is one leaf; past MAX_DEPTH or MAX_PARTS, cut."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    leaves = 0
    while stack:
        part, depth = stack.pop()
        defects.update(type(d).__name__ for d in getattr(part, "defects", ()))
        if not part.is_multipart() or _is_attached(part) or _is_opaque(part):
            leaves += 1
            if leaves > MAX_PARTS:
                defects.add("TooManyPartsDefect")
                return
            yield part
        elif depth >= MAX_DEPTH:
            defects.add("NestingTooDeepDefect")
        else:
            children = part.get_payload()  # a list here: get_payload decodes only a str payload
            assert isinstance(children, list)
            stack.extend((child, depth + 1) for child in reversed(children) if isinstance(child, Message))


def _is_attached(part: Message) -> bool:
    return part.get_content_disposition() == "attachment" or bool(part.get_filename())


def _is_opaque(part: Message) -> bool:
    """message/* other than a whole mail (delivery-status, disposition-notification): kept as a file."""
    return part.get_content_maintype() == "message" and part.get_content_type() not in _CONTAINERS


def _sort(part: Message, parts: _Parts) -> None:
    """Body, attachment, or both for named inline text (mail-parser shows that inline too)."""
    if part.is_multipart():  # kept whole, yet mail-parser reads the text inside it as body
        parts.misread = True
        _attach(part, parts)
        return
    content_type = part.get_content_type()
    no_boundary = part.get_content_maintype() == "multipart"  # its body is text mail-parser drops
    if content_type not in _BODY_TYPES and not no_boundary:
        _attach(part, parts)
        return
    attached = _is_attached(part)
    if attached:
        _attach(part, parts)
    if not attached or (not no_boundary and part.get_content_disposition() == "inline"):
        parts.bodies.append(part)
        parts.misread = parts.misread or no_boundary or not reads_as_ascii(part.get_content_charset())


def _attach(part: Message, parts: _Parts) -> None:
    content_type = clean_text(part.get_content_type())[:MAX_CONTENT_TYPE]
    parts.attachments.append(InboundAttachment(_filename(part), content_type, _part_bytes(part)))


def _filename(part: Message) -> str:
    name = part.get_filename()
    return header_text(name[:MAX_FILENAME_INPUT]) if name else ""


def _part_bytes(part: Message) -> bytes:
    """The attachment's content: decoded bytes, or an attached message as it was sent."""
    if part.is_multipart():
        return b"\n".join(p.as_bytes() for p in part.get_payload() if isinstance(p, Message))
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _read_bodies(bodies: list[Message], defects: set[str]) -> tuple[str, str]:
    """Text and HTML read from the part bytes, each part in its charset or a tolerant fallback."""
    texts: list[str] = []
    htmls: list[str] = []
    for part in bodies:
        try:
            (htmls if part.get_content_type() == "text/html" else texts).append(_text(part, defects))
        except Exception as exc:  # as in _walk: one odd part costs only itself
            log.debug("unreadable MIME part: %s: %s", type(exc).__name__, exc)
            defects.add("UnreadablePartDefect")
    return "\n".join(texts).strip("\n"), "\n".join(htmls)


def _text(part: Message, defects: set[str]) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    text, fell_back = decode_bytes(data, part.get_content_charset())
    if fell_back:
        defects.add(_CHARSET_DEFECT)
    return text.replace("\r\n", "\n")


def html_to_text(html: str, defects: set[str]) -> str:
    """Readable text of an HTML-only mail; a converter failure falls back to dropping the tags."""
    converter = html2text.HTML2Text(bodywidth=0)
    converter.ignore_images = True
    if len(html) > MAX_HTML_TO_TEXT:
        defects.add("HtmlTextCutDefect")
    try:
        return clean_text(converter.handle(html[:MAX_HTML_TO_TEXT]).strip())
    except Exception:  # html2text is not written for hostile markup
        defects.add("HtmlToTextDefect")
        return clean_text(_TAG.sub("", html[:MAX_HTML_TO_TEXT]).strip())
