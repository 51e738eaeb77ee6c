"""Walks a parsed message's MIME tree into body text, HTML, attachments and defect names.

The walk uses its own stack, not recursion, and stops at MAX_DEPTH, so hostile nesting costs a
defect, not the gateway. One part that cannot be read costs only itself: it becomes a defect and
the rest of the mail is still filed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

import html2text

from core.inbound import InboundAttachment
from mailgate.decoding import clean_text, decode_bytes, header_text

log = logging.getLogger(__name__)

MAX_DEPTH = 40
MAX_PARTS = 1_000  # each becomes rows in the database; the raw mail keeps any beyond
MAX_CONTENT_TYPE = 255  # the width of attachments.content_type
MAX_HTML_TO_TEXT = 300_000  # html2text is pure Python (~2 s a MB): beyond this the text is cut
_CONTAINERS = ("message/rfc822", "message/global")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class Content:
    text: str
    html: str
    attachments: tuple[InboundAttachment, ...]
    defects: tuple[str, ...]


@dataclass
class _Found:
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: list[InboundAttachment] = field(default_factory=list)
    defects: set[str] = field(default_factory=set)


def read_content(message: Message) -> Content:
    """Everything a person reads in the mail, plus what was wrong with it."""
    found = _Found()
    for part in _leaves(message, found.defects):
        try:
            _take(part, found)
        except Exception as exc:  # the stdlib can fail anywhere in an odd part; keep the others
            log.debug("unreadable MIME part: %s: %s", type(exc).__name__, exc)
            found.defects.add("UnreadablePartDefect")
    text = "\n".join(found.texts).strip("\n")
    html = "\n".join(found.htmls)
    if not text.strip() and html:
        text = html_to_text(html, found.defects)
    return Content(text, html, tuple(found.attachments), tuple(sorted(found.defects)))


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


def _take(part: Message, found: _Found) -> None:
    content_type = part.get_content_type()
    # a multipart leaf is one whose boundary is missing: its body is still the text to read
    readable = content_type in ("text/plain", "text/html") or part.get_content_maintype() == "multipart"
    if _is_attached(part) or part.is_multipart() or not readable:
        found.attachments.append(InboundAttachment(_filename(part), clean_text(content_type)[:MAX_CONTENT_TYPE],
                                                   _part_bytes(part)))
    elif content_type == "text/html":
        found.htmls.append(_text(part, found.defects))
    else:
        found.texts.append(_text(part, found.defects))


def _filename(part: Message) -> str:
    name = part.get_filename()
    return header_text(name) if name else ""


def _part_bytes(part: Message) -> bytes:
    """The attachment's content: decoded bytes, or an attached message as it was sent."""
    if part.is_multipart():
        return b"\n".join(p.as_bytes() for p in part.get_payload() if isinstance(p, Message))
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _text(part: Message, defects: set[str]) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    text, fell_back = decode_bytes(data, part.get_content_charset())
    if fell_back:
        defects.add("CharsetDecodeDefect")
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
