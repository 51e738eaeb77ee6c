"""Reads raw messages out of an mbox file, a Maildir, a folder of message files, or one file.

Nothing in a source is skipped: every byte of an mbox lands in some message, and every regular
file in a folder or a Maildir is one message, whatever its first line: a message file that begins
with a `From ` line (as saved by many clients) holds one mail, and a patch attached to it may well
begin with a line that looks like an mbox separator. Only a file named on its own is read as an mbox
when its first line is an mbox separator. The importer counts what it reads here, so "read" is the
number a user can check the import against.
"""

from __future__ import annotations

import mailbox
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError

_BOM = b"\xef\xbb\xbf"
_HEADER_LINE = re.compile(rb"^[\x21-\x39\x3b-\x7e]+[ \t]*:")
# `From SENDER DATE`, as mbox writers put it before each message: the sender one word (an address,
# MAILER-DAEMON, or Netscape's `-`), then a date; or no date, or nothing at all (old Netscape, some exports).
_ENVELOPE_LINE = re.compile(
    rb"From(?:[ \t]+(?:\"[^\"\r\n]*\"|[^\s\"])+(?:[ \t]+(?P<date>[^\r\n]*?))?)?[ \t]*\r?\n?\Z")
_DATE_PARTS = (re.compile(rb"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b"),
               re.compile(rb"\b\d{1,2}:\d\d\b"), re.compile(rb"\b\d{4}\b"))
_LATER_FROM = re.compile(rb"^>*From(?![^ \t\r\n])", re.MULTILINE)  # `From `, `>From `, a bare `From`; not `From:`
_QUOTED_FROM = re.compile(rb"^>(>*From )")  # mboxrd: one `>` comes off every `>…>From ` line
_CONTENT_LENGTH = re.compile(rb"Content-Length:[ \t]*(\d+)[ \t]*\r?\n?\Z", re.IGNORECASE)
_LINE_END_SLACK = 2  # writers of Content-Length disagree on counting the body's last line end
_FIRST_LINE_LIMIT = 4096
READ_WHERE_USED_BELOW = 1 << 20  # bytes: a named file smaller than this is read by the process that parses it


@dataclass(frozen=True)
class SourcedMessage:
    """One message's raw bytes and where it came from (a path, with `#n` for the n-th of an mbox)."""

    origin: str
    raw: bytes


def read_messages(path: Path) -> Iterator[SourcedMessage]:
    """Every message under `path`, in a stable order."""
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}")
    if _is_maildir(path):
        yield from _read_maildir(path)
    elif path.is_dir():
        for file in _files_under(path):
            yield SourcedMessage(str(file), _read_bytes(file))
    else:
        yield from _read_file(path)


@dataclass(frozen=True)
class NamedFile:
    """A file named on its own, left unread until a process wants its messages: one, or an mbox of them.

    Handed to a pool of parsing processes (mailgate.parse_pool) instead of its bytes: splitting an
    mbox goes line by line in Python, and many saved mails begin with a `From ` line, so even a
    single-message file costs as much to read as to parse. Read where it is parsed, it costs the
    pool's workers, not the one process that hands out the work.
    """

    path: Path

    def messages(self) -> Iterator[SourcedMessage]:
        return _read_file(self.path)


MessageSource = SourcedMessage | NamedFile


def message_sources(path: Path) -> Iterator[MessageSource]:
    """`read_messages` for a pool of workers: the same messages, in the same order, but a named file
    below READ_WHERE_USED_BELOW unread (a larger mbox is split here, so that its messages spread
    over the workers)."""
    if path.is_file() and path.stat().st_size < READ_WHERE_USED_BELOW:
        yield NamedFile(path)
    else:
        yield from read_messages(path)


def messages_of(source: MessageSource) -> Iterator[SourcedMessage]:
    """The messages a source holds: itself, or what its named file holds."""
    if isinstance(source, NamedFile):
        yield from source.messages()
    else:
        yield source


def count_messages(path: Path) -> int:
    """How many messages `read_messages` will yield (for the progress bar); reads everything once."""
    return sum(1 for _ in read_messages(path))


def is_separator(line: bytes) -> bool:
    """Whether a line has the shape of an mbox `From ` line (`From alice@example.com Mon Nov 30 10:00:00 2026`).

    "From Russia with love" has not: what follows the sender must be a date (a day or month name,
    a time and a year) or nothing; a bare `From` line (some writers) has the shape too.
    """
    match = _ENVELOPE_LINE.match(line)
    if match is None:
        return False
    date = match["date"]
    return not date or all(part.search(date) for part in _DATE_PARTS)


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def _read_maildir(path: Path) -> Iterator[SourcedMessage]:
    box = mailbox.Maildir(str(path), factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield SourcedMessage(f"{path}/{key}", box.get_bytes(key))


def _files_under(folder: Path) -> Iterator[Path]:
    """Regular files only: a FIFO would block the import, a dangling link has nothing to read."""
    for root, dirs, files in os.walk(folder, onerror=_unreadable):
        dirs.sort()
        for name in sorted(files):
            file = Path(root) / name
            if file.is_file():
                yield file


def _unreadable(error: OSError) -> None:
    raise UsageError(f"cannot read {error.filename}: {error.strerror or error}") from error


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read_file(path: Path) -> Iterator[SourcedMessage]:
    """A file named on its own: an mbox of messages when its first line is an mbox separator, else one message."""
    try:
        with path.open("rb") as handle:
            if not is_separator(handle.readline(_FIRST_LINE_LIMIT).removeprefix(_BOM)):
                handle.seek(0)
                yield SourcedMessage(str(path), handle.read())
                return
            handle.seek(0)
            if path.stat().st_size < READ_WHERE_USED_BELOW and (only := _only_message(handle.read())) is not None:
                yield SourcedMessage(f"{path}#1", only)
                return
            handle.seek(0)
            for number, raw in enumerate(split_mbox(handle), 1):
                yield SourcedMessage(f"{path}#{number}", raw)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def split_mbox(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The messages of an mbox's lines, without their `From ` lines, `>From ` unquoted (mboxrd).

    A line starts a message only when it is a separator (`is_separator`) right after an empty line
    (or where the message's Content-Length says its body ends: Netscape wrote no empty line), and a
    header line follows it: an unquoted `From ` in a body (mboxo writers leave them: "From Russia
    with love", or a patch's first line) stays in its body. It streams: a large mbox is never held
    whole in memory.
    """
    message: _MboxMessage | None = None
    candidate: bytes | None = None  # a separator line, until the next line tells what it is
    after_blank = False
    for line in lines:
        if message is None:  # the first line is the first message's `From ` line
            message = _MboxMessage()
            continue
        if candidate is not None:
            if _HEADER_LINE.match(line):
                yield message.raw()
                message = _MboxMessage()
            else:
                message.add(candidate)
            candidate = None
        if (after_blank or message.complete()) and is_separator(line):
            candidate = line
        else:
            message.add(line)
        after_blank = _is_blank(line)
    if message is not None:
        if candidate is not None:
            message.add(candidate)
        yield message.raw()


def _only_message(mbox: bytes) -> bytes | None:
    """What split_mbox makes of an mbox holding one message (most saved mails: one `From ` line on
    top), without going line by line; None when a later line begins with `From` or `>From`, which
    may start another message or be unquoted: then only split_mbox can tell."""
    first_line_end = mbox.find(b"\n")
    rest = mbox[first_line_end + 1:] if first_line_end >= 0 else b""
    if _LATER_FROM.search(rest):
        return None
    last_line = rest.rfind(b"\n", 0, len(rest) - 1) + 1
    return rest[:last_line] if _is_blank(rest[last_line:]) else rest


class _MboxMessage:
    """One message of an mbox as it is read: its lines, and whether its Content-Length says it is whole."""

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._in_header = True
        self._length: int | None = None
        self._body_bytes = 0

    def add(self, line: bytes) -> None:
        if self._in_header:
            self._in_header = not _is_blank(line)
            if match := _CONTENT_LENGTH.match(line):
                self._length = int(match[1])
        else:
            self._body_bytes += len(line)
        self._lines.append(_QUOTED_FROM.sub(rb"\1", line))

    def complete(self) -> bool:
        return self._length is not None and 0 <= self._body_bytes - self._length <= _LINE_END_SLACK

    def raw(self) -> bytes:
        """The message without the blank line the mbox format puts before the next `From ` line."""
        lines = self._lines[:-1] if self._lines and _is_blank(self._lines[-1]) else self._lines
        return b"".join(lines)


def _is_blank(line: bytes) -> bool:
    return line in (b"\n", b"\r\n", b"\r")
