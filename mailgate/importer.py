"""`postdesk import`: existing mail (mbox, Maildir, files) through the same spool and pipeline.

Both cores work: while this process files one chunk, a worker process parses the next. A chunk is
committed to the spool, claimed by the import's runner, before it is parsed, so a crash leaves it
for the daemon, and no daemon's runner parses it meanwhile. Chunks are filed in the order read.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace

from core.db import Database
from core.inbound import IMPORT_NOTIFY_SOURCE, IMPORT_SOURCE, Envelope, InboundMessage
from core.settings import Settings
from mailgate.mail_sources import SourcedMessage
from mailgate.runner import Parsed, RunStats, Spooled, SpoolRunner, parse_spooled
from spam.tokens import tokenize

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
                    progress: Callable[[int], None] = lambda n: None, *, notify: bool = False,
                    workers: int | None = None) -> ImportReport:
    """Spool in chunks and file each chunk; an oversize message is reported and skipped, not stored.

    Filed silently unless `notify`: no acknowledgement, notification or relay for old mail. The
    choice travels in each spool row's source, so mail a crash leaves for the daemon stays silent too.
    """
    envelope = NOTIFYING_IMPORT_ENVELOPE if notify else IMPORT_ENVELOPE
    report = ImportReport()
    runner = SpoolRunner(db, settings)
    with _Parsing(workers) as parsing:
        waiting: tuple[list[Spooled], Future[list[Parsed]] | list[Parsed]] | None = None
        for chunk in _chunks(messages, settings.smtp.max_message_size, envelope, report, progress):
            spooled = runner.spool_claimed(chunk)
            parsed = parsing.submit(spooled)  # before the last chunk is filed, so that the two overlap
            if waiting is not None:
                _file(runner, *waiting, progress)
            waiting = (spooled, parsed)
        if waiting is not None:
            _file(runner, *waiting, progress)
    runner.drain()  # what failed once is retried now, as the daemon would
    report.stats = runner.stats
    return report


def _chunks(messages: Iterable[SourcedMessage], limit: int, envelope: Envelope, report: ImportReport,
            progress: Callable[[int], None]) -> Iterator[list[tuple[bytes, Envelope]]]:
    """The messages in chunks of CHUNK or CHUNK_BYTES; a message over the size limit is counted, not kept."""
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
            yield chunk
            chunk, chunk_bytes = [], 0
    if chunk:
        yield chunk


def _file(runner: SpoolRunner, spooled: list[Spooled], parsed: Future[list[Parsed]] | list[Parsed],
          progress: Callable[[int], None]) -> None:
    done = parsed.result() if isinstance(parsed, Future) else parsed
    runner.file_parsed([_with_raw(item, one) for item, one in zip(spooled, done)])
    progress(len(done))


def parse_chunk(items: list[Spooled]) -> list[Parsed]:
    """A worker process's part: parse a chunk (top level, so that it pickles), and make each mail's spam
    tokens, which only a new ticket's mail needs but every core can make. The raw bytes, which this
    process has already, are not sent back: pickling them twice cost about what parsing here saved."""
    return [_without_raw(_with_tokens(parse_spooled(item))) for item in items]


def _with_tokens(parsed: Parsed) -> Parsed:
    if not isinstance(parsed.result, InboundMessage):
        return parsed
    return parsed._replace(spam_tokens=tokenize(parsed.result))


def _without_raw(parsed: Parsed) -> Parsed:
    item = replace(parsed.item, raw=b"")
    result = replace(parsed.result, raw=b"") if isinstance(parsed.result, InboundMessage) else parsed.result
    return parsed._replace(item=item, result=result)


def _with_raw(item: Spooled, parsed: Parsed) -> Parsed:
    result = replace(parsed.result, raw=item.raw) if isinstance(parsed.result, InboundMessage) else parsed.result
    return parsed._replace(item=item, result=result)


class _Parsing:
    """Parses chunks in one worker process while this one files, or here when there is one core."""

    def __init__(self, workers: int | None) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._cores = workers if workers is not None else os.cpu_count() or 1
        self._chunks = 0

    def submit(self, items: list[Spooled]) -> Future[list[Parsed]] | list[Parsed]:
        """The first chunk is parsed here (a few mails never pay for a process); from the second on, in the worker."""
        self._chunks += 1
        if self._pool is None and self._chunks > 1 and self._cores > 1:
            # fork: the worker starts with the parser loaded; it only parses, never touches the connections
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        return self._pool.submit(parse_chunk, items) if self._pool is not None else parse_chunk(items)

    def __enter__(self) -> _Parsing:
        return self

    def __exit__(self, *_: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
