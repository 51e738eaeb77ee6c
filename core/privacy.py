"""Decides what of a worker's text and attachments may travel to a customer: never the worker's address.

A worker's address leaks in more shapes than the plain ``jane@corp.test``: percent-encoded in a
``mailto:`` link, as an HTML entity, quoted-printable, with an IDN domain written in Unicode or as
punycode, in any letter case, inside a file name, a contact card, a forwarded mail or a PDF. So every
written form of each private address is compiled once into one regex, and every decision about
relaying worker content is made here rather than in each caller. It runs on every relayed mail, so a
scan first looks, in one fast pass, only for a form of "@" followed by a private domain.

We match without word boundaries on purpose: ``notes-from-jane@corp.test.pdf`` must be caught, and
redacting a little too much costs less than a leak.
"""

from __future__ import annotations

import base64
import dataclasses
import html.entities
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from core.addresses import try_normalize
from core.inbound import InboundAttachment
from core.reply_text import REDACTED

FILENAME_REDACTED = "address-removed"
"""What replaces an address in a file name: REDACTED's brackets and spaces make awkward file names."""


def _entity_names() -> dict[str, set[str]]:
    """Each character's HTML entity names ("@": {"commat"}), without the semicolon."""
    names: dict[str, set[str]] = {}
    for name, text in html.entities.html5.items():
        names.setdefault(text, set()).add(name.rstrip(";"))
    return names


_ENTITY_NAMES = _entity_names()

# Obfuscations people type by hand ("jane [at] corp dot test") and the other dots IDNA accepts; spaces
# around "@" and "." are allowed too (see _spell_char). Each form starts with a literal (see _literal_first).
_BRACKETS = (("[", "]"), ("(", ")"), ("{", "}"), ("<", ">"))
_SPOKEN = {
    "@": ("at", "\uff20", *(rf"\{o}\s*at\s*\{c}" for o, c in _BRACKETS)),
    ".": ("dot", "\u3002", "\uff0e", "\uff61", *(rf"\{o}\s*dot\s*\{c}" for o, c in _BRACKETS)),
}
_CONTACT_TYPES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
_CONTACT_SUFFIXES = (".vcf", ".vcard")
_FORWARD_SUFFIXES = (".eml", ".msg")
_QP_SOFT_BREAK = re.compile(rb"=\r?\n")
# Three ASCII characters in UTF-16, either byte order; starts with a literal so the search is fast.
_UTF16_HINT = re.compile(rb"\x00[\x20-\x7e]\x00[\x20-\x7e]\x00[\x20-\x7e]\x00")
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=\r\n]{12,}")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_MATCHES_NOTHING = re.compile(r"(?!)")


@dataclass(frozen=True)
class Screened:
    """The attachments that may be relayed, and one line per change for the worker."""

    kept: tuple[InboundAttachment, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class PrivateAddresses:
    """The worker addresses a customer must never see, and every way each can be written.

    Scanning uses two precompiled regexes: ``_tail`` (any form of "@" followed by a private domain)
    starts with a literal character, so the regex engine skips through plain text and binary data
    quickly; the full ``_pattern`` (one alternation of every address, longest first) then runs only
    around the rare places the tail matched.
    """

    emails: tuple[str, ...]
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _tail: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _reach: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", _compile(self.emails))
        object.__setattr__(self, "_tail", _compile_tail(self.emails))
        object.__setattr__(self, "_reach", _reach(self.emails))

    @classmethod
    def of(cls, emails: Iterable[str]) -> PrivateAddresses:
        """From normalised addresses; one given unnormalised is normalised, or kept lower-cased."""
        cleaned = {try_normalize(email) or email.strip().lower() for email in emails}
        return cls(tuple(sorted(email for email in cleaned if "@" in email.strip("@"))))

    def redact(self, text: str) -> str:
        """The text with every form of every private address replaced by REDACTED."""
        return self._pattern.sub(REDACTED, text) if self._tail.search(text) else text

    def found_in(self, data: bytes) -> bool:
        """Whether raw bytes carry any form of a private address, in any likely text encoding."""
        return any(self._found_in_text(view) for view in _text_views(bytes(data)))

    def screen_attachments(self, attachments: Sequence[InboundAttachment]) -> Screened:
        """Drop attachments that carry or may carry an address; rename those whose name shows one."""
        kept: list[InboundAttachment] = []
        notes: list[str] = []
        for attachment in attachments:
            reason = self._reason_to_drop(attachment)
            if reason:
                notes.append(f'dropped "{attachment.filename}": {reason}')
                continue
            name = self._redact_filename(attachment.filename or "")
            if name != (attachment.filename or ""):
                notes.append(f'renamed "{attachment.filename}" to "{name}"')
                attachment = dataclasses.replace(attachment, filename=name)
            kept.append(attachment)
        return Screened(tuple(kept), tuple(notes))

    def _found_in_text(self, text: str) -> bool:
        """Whether the full pattern matches just before and at any place the tail matched."""
        return any(self._pattern.search(text, start, end) for start, end in self._windows(text))

    def _windows(self, text: str) -> Iterator[tuple[int, int]]:
        """Stretches of text around tail matches, overlapping ones merged so each is searched once."""
        start, end = 0, -1
        for tail in self._tail.finditer(text):
            reach_start = tail.start() - self._reach
            if reach_start > end:
                if end >= 0:
                    yield start, end
                start = max(0, reach_start)
            end = tail.end()
        if end >= 0:
            yield start, end

    def _redact_filename(self, name: str) -> str:
        """The name with each form replaced by FILENAME_REDACTED, not REDACTED (no brackets or spaces)."""
        return self._pattern.sub(FILENAME_REDACTED, name) if self._tail.search(name) else name

    def _reason_to_drop(self, attachment: InboundAttachment) -> str | None:
        """Why an attachment must not travel, or None when it may."""
        media_type = (attachment.content_type or "").split(";")[0].strip().lower()
        name = (attachment.filename or "").lower()
        if media_type in _CONTACT_TYPES or name.endswith(_CONTACT_SUFFIXES):
            return f"a contact card ({_kind(media_type, name)}) can carry your address"
        if media_type.startswith("message/") or media_type == "text/rfc822-headers" \
                or name.endswith(_FORWARD_SUFFIXES):
            return f"a forwarded mail ({_kind(media_type, name)}) carries your address in its headers"
        if self.found_in(attachment.data or b""):
            return "its content contains your address"
        return None


def _kind(media_type: str, name: str) -> str:
    """How to name an attachment's kind in a note: its media type, else its file extension."""
    if media_type and media_type != "application/octet-stream":
        return media_type
    return "." + name.rsplit(".", 1)[-1] if "." in name else "no type"


def _compile(emails: Sequence[str]) -> re.Pattern[str]:
    """One case-insensitive alternation of every address, longest first, so a scan is one pass."""
    if not emails:
        return _MATCHES_NOTHING
    ordered = sorted(emails, key=len, reverse=True)
    return re.compile("|".join(_address_pattern(email) for email in ordered), re.IGNORECASE)


def _compile_tail(emails: Sequence[str]) -> re.Pattern[str]:
    """Any form of "@" then any private domain: a regex that starts with a literal, so it scans fast."""
    if not emails:
        return _MATCHES_NOTHING
    domains = {spelling for email in emails for spelling in _domain_spellings(email.rpartition("@")[2])}
    ats = "|".join(_literal_first(form) for form in _char_forms("@"))
    spelled = "|".join(_spell(domain) for domain in sorted(domains, key=len, reverse=True))
    return re.compile(f"(?:{ats})(?i:\\s*(?:{spelled}))")


def _literal_first(form: str) -> str:
    """A form as literal first character(s) in both cases, the rest case-insensitive.

    Python's regex engine can skip ahead quickly only when every alternative starts with a literal
    that needs no case folding.
    """
    head = form[:2] if form.startswith("\\") else form[:1]
    rest = f"(?i:{form[len(head):]})" if len(form) > len(head) else ""
    return "|".join(variant + rest for variant in sorted({head.lower(), head.upper()}))


def _reach(emails: Sequence[str]) -> int:
    """How far before a tail match a local part (with tag and padding) may start; generous."""
    return max((32 * len(email.rpartition("@")[0]) + 256 for email in emails), default=0)


def _address_pattern(email: str) -> str:
    """local[+tag]@domain, each character in any of its written forms, the domain in each spelling."""
    local, _, domain = email.rpartition("@")
    tag = f"(?:{_spell('+')}[\\w.-]{{0,64}}?)?"  # jane+x@ reaches jane@ just the same
    domains = sorted(_domain_spellings(domain), key=len, reverse=True)
    return f"{_spell(local)}{tag}{_spell('@')}(?:{'|'.join(_spell(d) for d in domains)})"


def _domain_spellings(domain: str) -> set[str]:
    """The domain as punycode and as Unicode (composed and decomposed), whichever it was given as."""
    spellings = {domain}
    for convert in (_to_ascii, _to_unicode):
        spellings |= {converted for converted in map(convert, tuple(spellings)) if converted}
    return spellings | {unicodedata.normalize("NFD", spelling) for spelling in spellings}


def _to_ascii(domain: str) -> str | None:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def _to_unicode(domain: str) -> str | None:
    try:
        return domain.encode("ascii").decode("idna")
    except UnicodeError:
        return None


def _spell(text: str) -> str:
    """A regex for the text with each character in any of its forms (so mixed encodings match too)."""
    return "".join(_spell_char(char) for char in text)


def _spell_char(char: str) -> str:
    forms = f"(?:{'|'.join(_char_forms(char))})"
    return f"\\s*{forms}\\s*" if char in _SPOKEN else forms


def _char_forms(char: str) -> list[str]:
    """Regexes for one character: itself, %XX, =XX (quoted-printable), HTML entities; longest first."""
    forms = {re.escape(char), *_SPOKEN.get(char, ())}
    for variant in {char, char.lower(), char.upper()}:
        if len(variant) != 1:  # "ß".upper() is "SS"; IGNORECASE covers what it can
            continue
        utf8 = variant.encode("utf-8", "surrogatepass")
        forms.add("".join(f"%{byte:02x}" for byte in utf8))
        forms.add("".join(f"={byte:02x}" for byte in utf8))
        forms.add(f"&#0*{ord(variant)};?")
        forms.add(f"&#x0*{ord(variant):x};?")
        forms.update(f"&{re.escape(name)};?" for name in _ENTITY_NAMES.get(variant, ()))
    return sorted(forms, key=len, reverse=True)


def _text_views(data: bytes) -> Iterator[str]:
    """The bytes read every way an address could hide in them; lazily, so a hit stops the work."""
    yield from _decodings(data)
    if _QP_SOFT_BREAK.search(data):
        yield from _decodings(_QP_SOFT_BREAK.sub(b"", data))
    for blob in _base64_blobs(data):
        yield from _decodings(blob)


def _decodings(data: bytes) -> Iterator[str]:
    """UTF-8, Latin-1 when not plain ASCII, and both UTF-16 orders when the data looks like UTF-16."""
    yield data.decode("utf-8", "ignore")
    if not data.isascii():
        yield data.decode("latin-1")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _UTF16_HINT.search(data):
        for start in (0, 1):  # UTF-16 text inside binary data may start at an odd offset
            yield data[start:].decode("utf-16-le", "ignore")
            yield data[start:].decode("utf-16-be", "ignore")


def _base64_blobs(data: bytes) -> Iterator[bytes]:
    """Every run of base64 text decoded, at each of the four alignments it might start on.

    Covers base64 parts of pasted MIME, data: URLs and armoured keys one level deep; nested MIME is
    not parsed as such, and compressed content (PDF Flate streams, .docx/.odt zips) is not opened.
    """
    for run in _BASE64_RUN.finditer(data):
        chars = _NOT_BASE64.sub(b"", run.group())
        for start in range(4):
            body = chars[start:]
            body = body[: len(body) // 4 * 4]
            if body:
                yield base64.b64decode(body)
