"""Turns mail's bytes, charsets and encoded words into the text as written; never raises on bad input.

Every string leaving here is safe for any database and any output: no NUL (PostgreSQL refuses it
in text) and no lone surrogate (no codec can write one). Text is read in its declared charset, or
the superset mail clients mean by it: Windows code pages under an ISO-8859 label (when the label's
reading shows C1 controls), cp932 for ISO-2022-JP with NEC or IBM rows. Where the label is missing
or proven wrong, UTF-8 is tried first (a few bad bytes cost only themselves), then charset-normalizer
guesses; the caller is told, so it can note a defect instead of failing.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections.abc import Iterable, Sequence
from email.header import decode_header
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # charset-normalizer loads only when a mail's bytes fit no label: most mail never needs it
    from charset_normalizer.models import CharsetMatch

_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_C1 = re.compile("[\x80-\x9f]")
_REPLACEMENT = "\ufffd"

# Labels mail clients write that Python does not know, and the codec they mean.
_LABEL_ALIASES = {"x-gbk": "gbk", "x-sjis": "shift_jis"}
# Codecs whose superset mail clients write under their label; decoding with the superset loses nothing.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "euc_kr": "cp949", "shift_jis": "cp932", "tis-620": "cp874"}
# The Windows code page that extends an ISO-8859 label; C1 controls in the label's reading are its letters.
_WINDOWS_EXTENSIONS = {"iso8859-1": "cp1252", "iso8859-15": "cp1252", "iso8859-9": "cp1254",
                       "iso8859-2": "cp1250", "iso8859-13": "cp1257"}
_ISO2022_JP = frozenset({"iso2022_jp", "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_3", "iso2022_jp_2004",
                         "iso2022_jp_ext"})
# What else a part labelled in a charset of this family can hold (8-bit Japanese under ISO-2022-JP).
_FAMILIES = dict.fromkeys(_ISO2022_JP, ("cp932", "euc_jp"))
# The charsets mail is written in: the WHATWG Encoding Standard's, less Mac, UTF-16 and the ISO-8859
# parts no mail client writes. DOS and Mac code pages read a stray byte or two as well as Windows
# ones and are never meant.
_MAIL_CHARSETS = ["cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258",
                  "iso8859_2", "iso8859_5", "iso8859_6", "iso8859_7", "iso8859_8", "iso8859_13", "iso8859_15",
                  "koi8_r", "koi8_u", "cp866", "cp874", "gb18030", "big5", "cp932", "euc_jp", "cp949"]
# When the detector cannot tell (a short Subject), the charsets mail is most often in, in that order.
_COMMON_IN_MAIL = ("cp1252", "gb18030", "gb2312", "gbk", "big5", "cp949", "euc_kr", "koi8_r", "cp1251", "cp932",
                   "shift_jis", "euc_jp", "cp1250", "iso8859_2", "cp1254", "cp1253", "cp1257", "cp874", "tis_620",
                   "cp1255", "cp1256")
# Below this many non-ASCII bytes the detector's language scores rest on a letter or two.
_FEW_BYTES = 8
_NON_ASCII = bytes(range(0x80, 0x100))
# Codecs that are not charsets: escape decoders read anything, punycode takes quadratic time.
_REFUSED_CODECS = {"punycode", "idna", "unicode-escape", "raw-unicode-escape", "undefined"}
# ASCII text with the bytes that switch a stateful or non-ASCII-based charset into another mode.
_MODE_SWITCHES = b"a+AGE-~{b}~\\n\x1b$Bc\x1b(B."
# ISO-2022-JP's designations: ASCII, JIS-Roman, half-width katakana, JIS X 0208 (1978, 1983).
_JIS_ESCAPE = re.compile(rb"\x1b(\(B|\(J|\(I|\$@|\$B)")


def clean_text(text: str) -> str:
    """Drop NUL, replace lone surrogates with U+FFFD: what every database accepts."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def decode_bytes(data: bytes, charset: str | None, hint: str | None = None) -> tuple[str, bool]:
    """Text of `data` as written in `charset`; True when the label did not hold or was unknown.

    `hint`, a charset the message uses elsewhere, wins where the detector cannot tell charsets apart.
    """
    codec = _codec(charset)
    text = _as_labelled(data, codec) if codec else None
    if text is not None:
        return clean_text(text), False
    text, exact = _as_unlabelled(data, codec, hint)
    return clean_text(text), not exact or bool(charset and charset.strip())


def _as_labelled(data: bytes, codec: str) -> str | None:
    """The bytes in the codec the label names, or the superset it means; None when the label is wrong."""
    if codec in _ISO2022_JP:
        return _iso2022_jp(data, codec)
    try:
        text = data.decode(codec)
    except (UnicodeError, ValueError, LookupError):  # bad bytes; LookupError: not a text codec
        return None
    if codec in _WINDOWS_EXTENSIONS and _C1.search(text):
        return _without_c1(data, _WINDOWS_EXTENSIONS[codec]) or text
    return text


def _as_unlabelled(data: bytes, label: str | None, hint: str | None) -> tuple[str, bool]:
    """What the bytes are in when the label is missing or wrong; True when they were UTF-8.

    UTF-8; else UTF-8 or the label but for a few bad bytes; else what the label's family or the
    detector reads; else the label, or Windows-1252, with U+FFFD for the bytes it cannot read.
    """
    if data.isascii():
        text = _iso2022_jp(data, "iso2022_jp") if b"\x1b" in data else None
        return (text, False) if text is not None else (data.decode("ascii"), True)
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        pass
    for codec in ("utf-8", label):
        text = _damaged(data, codec) if codec else None
        if text is not None:
            return text, False
    fitting = [codec for codec in _FAMILIES.get(label or "", ()) if _decodes(data, codec)]
    if len(fitting) == 1:
        return data.decode(fitting[0]), False
    last_resort = label if label != "ascii" else None
    return _decode_guessed(data, _detect(data, fitting, hint) or next(iter(fitting), last_resort)), False


def _damaged(data: bytes, codec: str) -> str | None:
    """Text in `codec` but for a few bad bytes, each replaced by U+FFFD; None when most of it is not."""
    try:
        text = data.decode(codec, "replace")
    except (UnicodeError, ValueError, LookupError):  # LookupError: not a text codec
        return None
    bad = text.count(_REPLACEMENT) - data.count(_REPLACEMENT.encode())
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    return text if non_ascii - bad > bad else None


def _without_c1(data: bytes, windows: str) -> str | None:
    """The text C1 controls stood for: UTF-8 (its continuation bytes read as C1), else the Windows code page."""
    for codec in ("utf-8", windows):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if not _C1.search(text):
            return text
    return None


def _iso2022_jp(data: bytes, codec: str) -> str | None:
    """ISO-2022-JP as Japanese mail writes it: the label's codec, else with half-width katakana, else cp932's rows."""
    if not data.isascii():  # 8-bit bytes are no ISO-2022: Shift_JIS, EUC-JP or UTF-8 under the label
        return None
    for candidate in (codec, "iso2022_jp_ext"):
        try:
            return data.decode(candidate)
        except UnicodeError:
            pass
    return _jis_as_cp932(data)


def _jis_as_cp932(data: bytes) -> str | None:
    """ISO-2022-JP as Microsoft writes it (CP50220): JIS X 0208 read through cp932, which has the NEC and
    IBM rows (①, Ⅰ, ㈱) Python's ISO-2022-JP codecs lack. None when it uses other designations."""
    pieces = _JIS_ESCAPE.split(data)
    shift_jis = bytearray(pieces[0])
    for designation, run in zip(pieces[1::2], pieces[2::2]):
        if designation in (b"$@", b"$B"):
            converted = _jis_to_shift_jis(run)
            if converted is None:
                return None
            shift_jis += converted
        elif designation == b"(I":
            shift_jis += bytes(b | 0x80 if 0x21 <= b <= 0x5F else b for b in run)
        else:
            shift_jis += run
    try:
        return None if b"\x1b" in shift_jis else shift_jis.decode("cp932")
    except UnicodeDecodeError:
        return None


def _jis_to_shift_jis(run: bytes) -> bytes | None:
    """JIS X 0208 byte pairs as Shift_JIS (controls pass as they are); None for a broken pair."""
    out = bytearray()
    position = 0
    while position < len(run):
        first = run[position]
        if first < 0x21:  # a line break inside the run: senders that forget to shift back
            out.append(first)
            position += 1
            continue
        second = run[position + 1] if position + 1 < len(run) else 0
        if not (0x21 <= first <= 0x7E and 0x21 <= second <= 0x7E):
            return None
        lead = ((first + 1) >> 1) + (0x70 if first <= 0x5E else 0xB0)
        trail = second + (0x7E if first % 2 == 0 else 0x1F if second <= 0x5F else 0x20)
        out += bytes((lead, trail))
        position += 2
    return bytes(out)


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _detect(data: bytes, candidates: Sequence[str] = (), preferred: str | None = None) -> str | None:
    """The codec charset-normalizer finds likeliest among the charsets mail is in (or `candidates`); None
    when none fits.

    A match with a language read beats one without. Among the matches it ranks alike, `preferred`,
    else the charset mail is most often in, is taken; with few non-ASCII bytes (a Subject) its
    language scores rest on a letter or two, so there only chaos ranks.
    """
    from charset_normalizer import from_bytes

    matches = from_bytes(data, cp_isolation=list(candidates) or _MAIL_CHARSETS)
    best = next((m for m in matches if m.coherence > 0), matches.best())  # a language read beats none
    if best is None:
        return None
    few = len(data) - len(data.translate(None, _NON_ASCII)) < _FEW_BYTES
    tied = [m for m in matches if _tied(m, best, few)]
    for name in (*_python_names(preferred), *_COMMON_IN_MAIL):
        if any(name in m.could_be_from_charset for m in tied):
            return _codec(name)
    return _codec(best.encoding)


def _tied(match: CharsetMatch, best: CharsetMatch, by_chaos_only: bool) -> bool:
    """Chaos within 1 % (one odd letter in a short text), language score within 2 %."""
    return abs(match.chaos - best.chaos) <= 0.01 and (by_chaos_only or abs(match.coherence - best.coherence) <= 0.02)


def _python_names(codec: str | None) -> tuple[str, ...]:
    """A codec as charset-normalizer names it (`iso8859_1`), with the Windows code page that extends it."""
    if not codec:
        return ()
    return tuple(dict.fromkeys(name.replace("-", "_") for name in (_WINDOWS_EXTENSIONS.get(codec, codec), codec)))


def _decode_guessed(data: bytes, codec: str | None) -> str:
    """The bytes in a guessed codec, read as a label is; Windows-1252 when nothing fits (bytes no charset
    reads show as U+FFFD)."""
    text = _as_labelled(data, codec) if codec else None
    return text if text is not None else data.decode(codec or "cp1252", "replace")


def _codec(charset: str | None) -> str | None:
    """The codec for a charset label; None when unknown or not safe to run on hostile input."""
    codec = _lookup(charset, _SUPERSETS)
    return None if codec in _REFUSED_CODECS else codec


def _lookup(charset: str | None, supersets: dict[str, str]) -> str | None:
    """The codec a charset label names, refused ones included; None when unknown."""
    if not charset:
        return None
    name = charset.strip().strip('"').split("*", 1)[0].lower()  # RFC 2231 adds *language
    try:
        codec = codecs.lookup(_LABEL_ALIASES.get(name, name)).name
    except (LookupError, ValueError, UnicodeError):  # unknown, or a label no codec name can be
        return None
    return supersets.get(codec, codec)


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


def raw_header_charset(values: Iterable[object], declared: Iterable[str | None] = ()) -> str | None:
    """The charset of a message's raw 8-bit header bytes that are not UTF-8; None when there are none.

    The charset a part of the message declares comes first, when it reads them (the client that
    wrote the text wrote the fields too; `declared` is read only when needed); else the detector
    reads all the fields together, which gives it more to go on than one short Subject.
    """
    raw = [_raw_bytes(value) for value in values if isinstance(value, str) and not value.isascii()]
    data = b"\n".join(b for b in raw if not _decodes(b, "utf-8"))
    if not data:
        return None
    for label in declared:
        codec = _codec(label)
        text = _as_labelled(data, codec) if codec and _reads_as_ascii(codec) else None
        if text is not None and not _C1.search(text):
            return codec
    return _detect(data) or "cp1252"


def _raw_bytes(text: str) -> bytes:
    """A header as the stdlib holds it (undecodable bytes as surrogate escapes) back as bytes."""
    return text.encode("utf-8", "surrogateescape")


def raw_header_text(value: object, charset: str | None = None) -> str:
    """A header as written, unfolded: raw 8-bit bytes as UTF-8, else in `charset` or the one detected."""
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # the stdlib keeps undecodable header bytes as surrogate escapes
        text = _raw_header_bytes(_raw_bytes(text), charset)
    return clean_text(_LINE_BREAKS.sub(" ", _FOLD.sub("", text)).strip())


def _raw_header_bytes(data: bytes, charset: str | None) -> str:
    """Raw 8-bit header bytes: UTF-8, else in `charset` (the message's), else in the one detected."""
    if _decodes(data, "utf-8"):
        return data.decode("utf-8")
    text = _as_labelled(data, charset) if charset else None
    return text if text is not None else _decode_guessed(data, _detect(data))


def header_text(value: object, charset: str | None = None) -> str:
    """A header for people to read: unfolded, encoded words (RFC 2047) decoded, one line."""
    return " ".join(decode_words(raw_header_text(value, charset)).split())


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
