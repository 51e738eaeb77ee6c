"""`postdesk import` parses the next chunk in a worker process while it files this one (issue 16): the same
tickets as parsing in one process, in the order read, each mail parsed once and the spool left empty."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from core.db import Database
from core.inbound import Envelope
from core.models import Message, SpamTraining, SpoolItem, Ticket
from core.settings import Settings
from mailgate.importer import CHUNK, import_messages
from mailgate.mail_sources import SourcedMessage
from mailgate.parse import parse_message
from spam.filter import score_mail
from spam.training import train_mails
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


def train(database: Database, settings: Settings) -> None:
    """Enough training for real scores: the worker's spam tokens must score as the filing process's would."""
    enough = settings.spam.min_training
    spammy = [make_mail(subject=f"WINNER cash {n}", body=f"cheap pills, click now, prize {n}",
                        sender="promo@pills.example.biz") for n in range(enough)]
    hammy = [make_mail(subject=f"Case {n}", body=f"round 0 of case {n}, the printer again") for n in range(enough)]
    with database.write() as session:
        for found, verdict in ((spammy, SpamTraining.SPAM), (hammy, SpamTraining.NOT_SPAM)):
            train_mails(session, [parse_message(m.as_bytes(), Envelope("test")) for m in found], verdict)


def scores_as_filed_here(database: Database, settings: Settings) -> tuple[dict[str, object], dict[str, object]]:
    """Each ticket's stored score and words, and what scoring its first mail in this process gives."""
    stored, here = {}, {}
    with database.read() as session:
        for ticket in session.scalars(select(Ticket)):
            first = min(ticket.messages, key=lambda m: m.id)
            stored[ticket.mask] = (ticket.spam_score, ticket.interesting_words)
            result = score_mail(session, parse_message(first.raw, Envelope("test")), settings.spam)
            here[ticket.mask] = (result.score, result.words_json())
    return stored, here


@pytest.mark.sqlite_only
@pytest.mark.parametrize("workers", [1, 2], ids=["one process", "a parsing worker"])
def test_an_import_files_every_mail_once_in_threads_whichever_process_parses(
        database: Database, settings: Settings, workers: int) -> None:
    total = 3 * THREADS
    train(database, settings)
    report = import_messages(database, settings, mails(), workers=workers)
    assert (report.read, report.stats.filed, report.stats.parsed, report.left_for_retry) == (total, total, total, 0)
    expected = {frozenset(f"<case{n}.r{r}@outside.test>" for r in range(3)) for n in range(THREADS)}
    assert tickets(database) == expected
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(SpoolItem)) == 0
        assert session.scalar(select(func.count()).select_from(Ticket)) == THREADS
    stored, here = scores_as_filed_here(database, settings)
    assert stored == here  # score and words alike: the worker's tokens are the filing process's
    assert all(score is not None and score < 0.5 and words for score, words in stored.values()), "scored, trained"
