"""Reads raw messages out of an mbox file, a Maildir, a folder of message files, or one file."""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator
from pathlib import Path

from core.errors import UsageError


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def count_messages(path: Path) -> int:
    """How many messages `read_messages` will yield (for the progress bar)."""
    return sum(1 for _ in _keys(path))


def _keys(path: Path) -> Iterator[tuple[str, object]]:
    if not path.exists():
        raise UsageError(f"no such file or folder: {path}")
    if _is_maildir(path):
        box = mailbox.Maildir(str(path), factory=None, create=False)
        yield from (("maildir", (box, key)) for key in sorted(box.iterkeys()))
    elif path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                yield from _keys_of_file(Path(root) / name)
    else:
        yield from _keys_of_file(path)


def _keys_of_file(path: Path) -> Iterator[tuple[str, object]]:
    if _is_mbox(path):
        box = mailbox.mbox(str(path), factory=None, create=False)
        yield from (("mbox", (box, key)) for key in box.iterkeys())
    else:
        yield ("file", path)


def read_messages(path: Path) -> Iterator[bytes]:
    """Every message's raw bytes, in a stable order."""
    for kind, handle in _keys(path):
        if kind == "file":
            assert isinstance(handle, Path)
            yield handle.read_bytes()
        else:
            box, key = handle  # type: ignore[misc]
            yield box.get_bytes(key)
