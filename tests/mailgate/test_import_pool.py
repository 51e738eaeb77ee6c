"""`postdesk import` parses the next chunk in a worker process while it files this one (issue 16): the same
tickets as parsing in one process, in the order read, each mail parsed once and the spool left empty."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.models import Message, SpoolItem, Ticket
from core.settings import Settings
from mailgate.importer import CHUNK, import_messages
from mailgate.mail_sources import SourcedMessage
from testkit import make_mail

THREADS = CHUNK // 2 + 7  # a reply lands two chunks after the mail it answers


def mails() -> Iterator[SourcedMessage]:
    """Originals first, then replies to each, then replies to those: threads that cross chunks."""
    for round_ in range(3):
        for n in range(THREADS):
            mail = make_mail(sender=f"Customer {n} <c{n}@outside.test>", subject=f"Case {n}",
                             body=f"round {round_} of case {n}", message_id=f"<case{n}.r{round_}@outside.test>",
                             in_reply_to=f"<case{n}.r{round_ - 1}@outside.test>" if round_ else None)
            yield SourcedMessage(f"case{n}.r{round_}", mail.as_bytes())


def tickets(database: Database) -> set[frozenset[str]]:
    with database.read() as session:
        found: dict[int, set[str]] = {}
        for ticket_id, message_id in session.execute(select(Message.ticket_id, Message.message_id)):
            found.setdefault(ticket_id, set()).add(message_id)
    return {frozenset(ids) for ids in found.values()}


@pytest.mark.sqlite_only
@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "a parsing worker"])
def test_an_import_files_every_mail_once_in_threads_whichever_process_parses(
        database: Database, settings: Settings, workers: int) -> None:
    total = 3 * THREADS
    report = import_messages(database, settings, mails(), workers=workers)
    assert (report.read, report.stats.filed, report.stats.parsed, report.left_for_retry) == (total, total, total, 0)
    expected = {frozenset(f"<case{n}.r{r}@outside.test>" for r in range(3)) for n in range(THREADS)}
    assert tickets(database) == expected
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(SpoolItem)) == 0
        assert session.scalar(select(func.count()).select_from(Ticket)) == THREADS
