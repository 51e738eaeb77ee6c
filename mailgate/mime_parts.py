"""The readable content of a mail mail-parser has read: body text and HTML, attachments, defects.

mail-parser decodes the body. Where it is known to misread one (a charset it decodes wrongly or not
at all, text inside a part that is kept whole, a multipart without a boundary) the body is read
again here from the part bytes. Attachments always come from the MIME tree mail-parser built, as
exact bytes (mail-parser hands text attachments back decoded). The walk uses its own stack and
stops at MAX_DEPTH and MAX_PARTS, so hostile structure costs a defect, not the gateway; one part
that cannot be read costs only itself.
"""

from __future__ import annotations

import functools
import html
import itertools
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING

from core.inbound import InboundAttachment
from mailgate.decoding import clean_text, decode_bytes, header_text, raw_header_text, reads_as_ascii

if TYPE_CHECKING:  # lxml and inscriptis load only when an HTML-only mail is laid out as text
    import lxml.html
    from inscriptis.model.config import ParserConfig
    from mailparser import MailParser

log = logging.getLogger(__name__)

MAX_DEPTH = 40
MAX_PARTS = 1_000  # each becomes rows in the database; the raw mail keeps any beyond
MAX_CONTENT_TYPE = 255  # the width of attachments.content_type
MAX_FILENAME_INPUT = 16_384  # decoding encoded words takes quadratic time in their number
# The time one HTML-only mail may take: inscriptis lays out ~25,000 elements a second (tables), lxml reads
# ~10 MB a second. Beyond either bound the text is cut.
MAX_HTML_TO_TEXT = 300_000
MAX_HTML_ELEMENTS = 10_000
_CONTAINERS = ("message/rfc822", "message/global")
_NAMING_FIELDS = ("content-type", "content-disposition")
_BODY_TYPES = ("text/plain", "text/html")
_TAG = re.compile(r"<[^>]*>")
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*>")  # lxml refuses one in a str (it names an encoding)
_BLANK_LINES = re.compile(r"\n{3,}")
_SHOWN_SCHEMES = ("http://", "https://", "ftp://", "mailto:")
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


def read_content(parsed: MailParser, header_charset: str | None = None) -> Content:
    """Everything a person reads in the mail, plus what was wrong with it; raw 8-bit names in `header_charset`."""
    parts = _walk(parsed.message, header_charset)
    defects = parts.defects | {str(c) for c in parsed.defects_categories}
    text = clean_text("\n".join(parsed.text_plain).replace("\r\n", "\n")).strip("\n")
    html = clean_text("\n".join(parsed.text_html).replace("\r\n", "\n"))
    if parts.misread or _CHARSET_DEFECT in defects or _MISDECODED.search(text) or _MISDECODED.search(html):
        defects.discard(_CHARSET_DEFECT)  # mail-parser's verdict; the reading below gives its own
        text, html = _read_bodies(parts.bodies, defects, header_charset)
    if not text.strip() and html:
        text = html_to_text(html, defects)
    return Content(text, html, tuple(parts.attachments), tuple(sorted(defects)))


def _walk(message: Message, header_charset: str | None) -> _Parts:
    parts = _Parts()
    for part in _leaves(message, parts.defects):
        try:
            _sort(part, parts, header_charset)
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


def _sort(part: Message, parts: _Parts, header_charset: str | None) -> None:
    """Body, attachment, or both for named inline text (mail-parser shows that inline too)."""
    if part.is_multipart():  # kept whole, yet mail-parser reads the text inside it as body
        parts.misread = True
        _attach(part, parts, header_charset)
        return
    content_type = part.get_content_type()
    no_boundary = part.get_content_maintype() == "multipart"  # its body is text mail-parser drops
    if content_type not in _BODY_TYPES and not no_boundary:
        _attach(part, parts, header_charset)
        return
    attached = _is_attached(part)
    if attached:
        _attach(part, parts, header_charset)
    if not attached or (not no_boundary and part.get_content_disposition() == "inline"):
        parts.bodies.append(part)
        parts.misread = parts.misread or no_boundary or not reads_as_ascii(part.get_content_charset())


def _attach(part: Message, parts: _Parts, header_charset: str | None) -> None:
    content_type = clean_text(part.get_content_type())[:MAX_CONTENT_TYPE]
    parts.attachments.append(InboundAttachment(_filename(part, header_charset), content_type, _part_bytes(part)))


def _filename(part: Message, header_charset: str | None) -> str:
    """The part's file name as written: raw 8-bit bytes in `header_charset`, RFC 2231 in its own charset."""
    fields = _readable_fields(part, header_charset)
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        value = fields.get_param(param, None, header)
        if value is not None:
            break
    else:
        return ""
    if isinstance(value, tuple):  # RFC 2231: (charset, language, the %-decoded bytes as Latin-1)
        value = decode_bytes(value[2][:MAX_FILENAME_INPUT].encode("latin-1", "replace"), value[0])[0]
    return header_text(value[:MAX_FILENAME_INPUT], header_charset).strip()


def _readable_fields(part: Message, header_charset: str | None) -> Message:
    """The part, or its naming fields with raw 8-bit bytes decoded: the stdlib would make them U+FFFD."""
    naming = [(name, value) for name, value in part.raw_items() if name.lower() in _NAMING_FIELDS]
    if all(value.isascii() for _, value in naming):
        return part
    fields = Message()
    for name, value in naming:
        fields[name] = raw_header_text(value[:MAX_FILENAME_INPUT], header_charset)
    return fields


def _part_bytes(part: Message) -> bytes:
    """The attachment's content: decoded bytes, or an attached message as it was sent."""
    if part.is_multipart():
        return b"\n".join(p.as_bytes() for p in part.get_payload() if isinstance(p, Message))
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _read_bodies(bodies: list[Message], defects: set[str], header_charset: str | None) -> tuple[str, str]:
    """Text and HTML read from the part bytes, each in its charset, else in what decoding finds (the
    charset of the raw 8-bit header fields, where it cannot tell)."""
    texts: list[str] = []
    htmls: list[str] = []
    for part in bodies:
        try:
            (htmls if part.get_content_type() == "text/html" else texts).append(_text(part, defects, header_charset))
        except Exception as exc:  # as in _walk: one odd part costs only itself
            log.debug("unreadable MIME part: %s: %s", type(exc).__name__, exc)
            defects.add("UnreadablePartDefect")
    return "\n".join(texts).strip("\n"), "\n".join(htmls)


def _text(part: Message, defects: set[str], header_charset: str | None) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    text, fell_back = decode_bytes(data, part.get_content_charset(), header_charset)
    if fell_back:
        defects.add(_CHARSET_DEFECT)
    return text.replace("\r\n", "\n")


def html_to_text(html: str, defects: set[str]) -> str:
    """Plain text of an HTML-only mail, laid out as a browser shows it (tables in columns), no Markdown.

    A link shows its target after its text, `text (url)`, unless the text says it already. Should
    the converter fail, the tags are dropped instead.
    """
    if len(html) > MAX_HTML_TO_TEXT:
        defects.add("HtmlTextCutDefect")
    markup = _XML_DECLARATION.sub("", html[:MAX_HTML_TO_TEXT])
    if not markup.strip():
        return ""
    try:
        text = _layout(markup, defects)
    except Exception:  # as in _walk: a converter fault costs only the layout
        defects.add("HtmlToTextDefect")
        text = _without_tags(markup)
    return clean_text(_BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip())


def _layout(markup: str, defects: set[str]) -> str:
    """inscriptis's text of the markup; the tags dropped instead where lxml gives up (nesting past its limit)."""
    import lxml.html
    from inscriptis.html_engine import Inscriptis
    from lxml.etree import ParserError

    parser = lxml.html.HTMLParser()
    try:
        tree = lxml.html.document_fromstring(markup, parser=parser)
    except ParserError:  # nothing but comments or white space
        return _without_tags(markup)
    if any(error.type_name == "ERR_RESOURCE_LIMIT" for error in parser.error_log):  # the rest was not read
        defects.add("HtmlTooDeepDefect")
        return _without_tags(markup)
    if _cut_after(tree, MAX_HTML_ELEMENTS):
        defects.add("HtmlTextCutDefect")
    _show_link_targets(tree)
    return Inscriptis(tree, _plain_text()).get_text()


@functools.cache
def _plain_text() -> ParserConfig:
    """Text as a browser shows it (the strict profile: Firefox's defaults; the default profile pads every
    <span> with spaces); no link targets or image names: links are added as `text (url)`."""
    from inscriptis.css_profiles import CSS_PROFILES
    from inscriptis.model.config import ParserConfig

    return ParserConfig(css=dict(CSS_PROFILES["strict"]), display_links=False, display_images=False)


def _without_tags(markup: str) -> str:
    return html.unescape(_TAG.sub("", markup))


def _cut_after(tree: lxml.html.HtmlElement, limit: int) -> bool:
    """Drop every element after the first `limit` in document order; True when any was dropped."""
    last = next(itertools.islice(tree.iter(), limit, None), None)
    if last is None:
        return False
    last.clear(keep_tail=True)
    node = last
    while (parent := node.getparent()) is not None:
        for later in list(node.itersiblings()):
            parent.remove(later)
        node = parent
    return True


def _show_link_targets(tree: lxml.html.HtmlElement) -> None:
    """Write ` (target)` after each link's text where the text does not say where it goes."""
    for link in tree.iter("a"):
        target = link.get("href", "").strip()
        label = link.text_content().strip()
        if not label or not target.lower().startswith(_SHOWN_SCHEMES) or not target.isprintable():
            continue
        if target[:7].lower() == "mailto:":
            target = target[7:].split("?", 1)[0]
        if _bare(label) == _bare(target):
            continue
        if len(link):
            link[-1].tail = f"{link[-1].tail or ''} ({target})"
        else:
            link.text = f"{link.text or ''} ({target})"


def _bare(link: str) -> str:
    """A link as people compare it: no scheme, no trailing slash, any case."""
    return link.lower().split("://", 1)[-1].removeprefix("mailto:").rstrip("/")
