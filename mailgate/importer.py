"""`postdesk import`: existing mail (mbox, Maildir, files) through the same spool and pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.db import Database
from core.inbound import IMPORT_NOTIFY_SOURCE, IMPORT_SOURCE, Envelope
from core.settings import Settings
from mailgate.mail_sources import SourcedMessage
from mailgate.runner import RunStats, SpoolRunner
from mailgate.spool import spool_messages

CHUNK = 200
CHUNK_BYTES = 64 * 1024 * 1024  # a chunk is held in memory and committed in one transaction
IMPORT_ENVELOPE = Envelope(IMPORT_SOURCE, "", ())  # silent: an import is a migration
NOTIFYING_IMPORT_ENVELOPE = Envelope(IMPORT_NOTIFY_SOURCE, "", ())


@dataclass
class ImportReport:
    """What an import read and what became of it; every message read is in exactly one count."""

    read: int = 0
    too_large: list[tuple[str, int]] = field(default_factory=list)  # (origin, size), not stored
    stats: RunStats = field(default_factory=RunStats)

    @property
    def left_for_retry(self) -> int:
        """Spooled but not yet filed (a failing pipeline step); the daemon files them later."""
        done = self.stats.filed + self.stats.duplicates + self.stats.quarantined
        return max(0, self.read - len(self.too_large) - done)


def import_messages(db: Database, settings: Settings, messages: Iterable[SourcedMessage],
                    progress: Callable[[int], None] = lambda n: None, *, notify: bool = False) -> ImportReport:
    """Spool in chunks and file each chunk; an oversize message is reported and skipped, not stored.

    Filed silently unless `notify`: no acknowledgement, notification or relay for old mail. The
    choice travels in each spool row's source, so mail a crash leaves for the daemon stays silent too.
    """
    envelope = NOTIFYING_IMPORT_ENVELOPE if notify else IMPORT_ENVELOPE
    report = ImportReport()
    runner = SpoolRunner(db, settings)
    limit = settings.smtp.max_message_size
    chunk: list[tuple[bytes, Envelope]] = []
    chunk_bytes = 0
    for message in messages:
        report.read += 1
        if len(message.raw) > limit:
            report.too_large.append((message.origin, len(message.raw)))
            progress(1)
            continue
        chunk.append((message.raw, envelope))
        chunk_bytes += len(message.raw)
        if len(chunk) >= CHUNK or chunk_bytes >= CHUNK_BYTES:
            _file(db, runner, chunk, progress)
            chunk, chunk_bytes = [], 0
    _file(db, runner, chunk, progress)
    report.stats = runner.stats
    return report


def _file(db: Database, runner: SpoolRunner, chunk: list[tuple[bytes, Envelope]],
          progress: Callable[[int], None]) -> None:
    if chunk:
        spool_messages(db, chunk)
        runner.drain()
        progress(len(chunk))
