"""Turns mail's bytes, charsets and encoded words into clean text; never raises on bad input.

Every string leaving here is safe for any database and any output: no NUL (PostgreSQL refuses it
in text) and no lone surrogate (no codec can write one). A wrong or unknown charset falls back to
UTF-8, then Windows-1252, and the caller is told, so it can note a defect instead of failing.
"""

from __future__ import annotations

import codecs
import functools
import re
from email.header import decode_header

_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAKS = re.compile(r"[\r\n]+")

# Labels that mail clients write for a superset; decoding with the superset loses nothing.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "shift_jis": "cp932", "x-sjis": "cp932",
    "tis-620": "cp874",
}
# Codecs that are not charsets: escape decoders read anything, punycode takes quadratic time.
_REFUSED_CODECS = {"punycode", "idna", "unicode-escape", "raw-unicode-escape", "undefined"}
# ASCII text with the bytes that switch a stateful or non-ASCII-based charset into another mode.
_MODE_SWITCHES = b"a+AGE-~{b}~\\n\x1b$Bc\x1b(B."


def clean_text(text: str) -> str:
    """Drop NUL, replace lone surrogates with U+FFFD: what every database accepts."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, bool]:
    """Text of `data` in its declared charset, else UTF-8, else Windows-1252; True when it fell back."""
    declared = _codec(charset)
    if declared is not None:
        try:
            return clean_text(data.decode(declared)), False
        except (UnicodeError, ValueError, LookupError):  # bad bytes; LookupError: not a text codec
            pass
    try:
        return clean_text(data.decode("utf-8")), bool(charset and charset.strip())
    except UnicodeDecodeError:
        return clean_text(data.decode("cp1252", "replace")), True


def _codec(charset: str | None) -> str | None:
    """The codec for a charset label; None when unknown or not safe to run on hostile input."""
    codec = _lookup(charset, _CHARSET_SUPERSETS)
    return None if codec in _REFUSED_CODECS else codec


def _lookup(charset: str | None, supersets: dict[str, str]) -> str | None:
    """The codec a charset label names, refused ones included; None when unknown."""
    if not charset:
        return None
    name = charset.strip().strip('"').split("*", 1)[0].lower()  # RFC 2231 adds *language
    try:
        return codecs.lookup(supersets.get(name, name)).name
    except (LookupError, ValueError, UnicodeError):  # unknown, or a label no codec name can be
        return None


def reads_as_ascii(charset: str | None) -> bool:
    """True when 7-bit text in this charset means what its ASCII says (unknown labels included).

    False for ISO-2022-*, UTF-7, HZ and UTF-16/32, whose 7-bit bytes switch modes or pair up, and
    for the refused codecs.
    """
    codec = _lookup(charset, {})
    return codec is None or _reads_as_ascii(codec)


@functools.lru_cache(maxsize=None)  # keyed by codec name: a few dozen at most
def _reads_as_ascii(codec: str) -> bool:
    if codec in _REFUSED_CODECS:
        return False
    try:
        return _MODE_SWITCHES.decode(codec) == _MODE_SWITCHES.decode("ascii")
    except (UnicodeError, LookupError):  # LookupError: not a text codec
        return False


def is_punycode(charset: str) -> bool:
    """True when a label names the punycode codec, which takes quadratic time to decode."""
    return _lookup(charset, {}) == "punycode"


def raw_header_text(value: object) -> str:
    """A header as written, unfolded, with raw 8-bit bytes read as UTF-8 (else Windows-1252)."""
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # the stdlib keeps undecodable header bytes as surrogate escapes
        text, _ = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    return clean_text(_LINE_BREAKS.sub(" ", _FOLD.sub("", text)).strip())


def header_text(value: object) -> str:
    """A header for people to read: unfolded, encoded words (RFC 2047) decoded, one line."""
    return " ".join(decode_words(raw_header_text(value)).split())


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words; a broken one stays as written."""
    if "=?" not in text:
        return text
    try:
        chunks = decode_header(text)
    except Exception:  # the stdlib raises HeaderParseError and worse on broken words
        return text
    decoded = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            decoded.append(chunk)
        elif charset is None:  # decode_header hands back unencoded runs this way
            decoded.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            decoded.append(decode_bytes(chunk, charset)[0])
    return clean_text("".join(decoded))
