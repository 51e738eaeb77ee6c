"""`postdesk import`: existing mail (mbox, Maildir, files) through the same spool and pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.db import Database
from core.inbound import Envelope
from core.settings import Settings
from mailgate.runner import RunStats, SpoolRunner
from mailgate.spool import spool_messages

CHUNK = 200


@dataclass
class ImportReport:
    read: int = 0
    too_large: int = 0
    stats: RunStats | None = None


def import_messages(db: Database, settings: Settings, messages: Iterable[bytes],
                    progress: Callable[[int], None] = lambda n: None) -> ImportReport:
    """Spool in chunks and file each chunk; an oversize message is counted and skipped, not stored."""
    report = ImportReport()
    runner = SpoolRunner(db, settings.helpdesk)
    envelope = Envelope("import", "", ())
    chunk: list[tuple[bytes, Envelope]] = []
    for raw in messages:
        report.read += 1
        if len(raw) > settings.smtp.max_message_size:
            report.too_large += 1
        else:
            chunk.append((raw, envelope))
        if len(chunk) >= CHUNK:
            _file(db, runner, chunk, progress)
            chunk = []
    _file(db, runner, chunk, progress)
    report.stats = runner.stats
    return report


def _file(db: Database, runner: SpoolRunner, chunk: list[tuple[bytes, Envelope]],
          progress: Callable[[int], None]) -> None:
    if chunk:
        spool_messages(db, chunk)
        runner.drain()
        progress(len(chunk))
