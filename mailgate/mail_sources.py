"""Reads raw messages out of an mbox file, a Maildir, a folder of message files, or one file.

Nothing in a source is skipped: every byte of an mbox lands in some message, and every regular
file in a folder is one message (or an mbox of several). The importer counts what it reads here,
so "read" is the number a user can check the import against.
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
_FROM_LINE = re.compile(rb"From (?:[^\s:]\S*(?:[ \t].*)?)?\r?\n?\Z")  # `From sender date`, as mbox writes
_QUOTED_FROM = re.compile(rb"^>(>*From )")


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
            yield from _read_file(file)
    else:
        yield from _read_file(path)


def count_messages(path: Path) -> int:
    """How many messages `read_messages` will yield (for the progress bar); reads everything once."""
    return sum(1 for _ in read_messages(path))


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


def _read_file(path: Path) -> Iterator[SourcedMessage]:
    """One file: an mbox of messages when it starts with a `From ` line, else one message."""
    try:
        with path.open("rb") as handle:
            if not handle.read(len(_BOM) + 5).removeprefix(_BOM).startswith(b"From "):
                handle.seek(0)
                yield SourcedMessage(str(path), handle.read())
                return
            handle.seek(0)
            for number, raw in enumerate(split_mbox(handle), 1):
                yield SourcedMessage(f"{path}#{number}", raw)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def split_mbox(lines: Iterable[bytes]) -> Iterator[bytes]:
    """The messages of an mbox's lines, without their `From ` lines, `>From ` unquoted (mboxrd).

    A `From ` line starts a message only when a header line follows it, so an unquoted `From ` in
    a body (mboxo writers leave them: "From Russia with love") stays in its body. It streams: a
    large mbox is never held whole in memory.
    """
    current: list[bytes] | None = None
    candidate: bytes | None = None  # a `From ` line, until the next line tells what it is
    for line in lines:
        if current is None:  # the first line is the first message's `From ` line
            current = []
            continue
        if candidate is not None:
            if _HEADER_LINE.match(line):
                yield _message_bytes(current)
                current = []
            else:
                current.append(candidate)
            candidate = None
        if _FROM_LINE.match(line):
            candidate = line
        else:
            current.append(_QUOTED_FROM.sub(rb"\1", line))
    if current is not None:
        yield _message_bytes(current + ([candidate] if candidate is not None else []))


def _message_bytes(lines: list[bytes]) -> bytes:
    """The message without the blank line the mbox format puts before the next `From ` line."""
    if lines and not lines[-1].strip():
        lines = lines[:-1]
    return b"".join(lines)
