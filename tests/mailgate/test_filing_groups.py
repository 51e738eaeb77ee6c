"""The runner files mail a group to a savepoint, steps aside for the spool writer mid-group, and a bad
mail of a group still costs only itself (mailgate.runner, core.db.Turn)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from core.db import Database, Turn
from core.inbound import Envelope
from core.models import Message, QuarantineItem, SpoolItem
from core.settings import Settings
from mailgate.runner import GROUP_SIZE, START_METHOD, SpoolRunner, parse_spooled
from mailgate.spool import WriteTurns, spool_messages
from testkit import make_mail

pytestmark = pytest.mark.sqlite_only  # the turns and the groups are SQLite's; PostgreSQL commits each mail

ENVELOPE = Envelope("smtp", "alice@customer.test", ("support@example.com",))


def spool_mails(database: Database, count: int) -> None:
    spool_messages(database, [(make_mail(subject=f"Question {n}", sender=f"c{n}@customer.test",
                                         message_id=f"<q{n}@customer.test>").as_bytes(), ENVELOPE)
                              for n in range(count)])


def counted(database: Database, model: type[Message] | type[SpoolItem] | type[QuarantineItem]) -> int:
    with database.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_the_spool_writer_gets_its_turn_in_the_middle_of_a_batch(database: Database, settings: Settings) -> None:
    """A Turn.FIRST write that waits is let in after the mail in hand, not after the runner's whole batch."""
    database.turns = WriteTurns(multiprocessing.get_context(START_METHOD))
    total = 3 * GROUP_SIZE
    spool_mails(database, total)
    runner = SpoolRunner(database, settings, batch_size=total)
    filing = threading.Thread(target=runner.drain)
    filing.start()
    deadline = time.monotonic() + 60
    while runner.stats.filed < GROUP_SIZE and time.monotonic() < deadline:  # the first group is filed, not committed
        time.sleep(0.0005)
    with database.write(Turn.FIRST) as session:  # what an SMTP client's 250 waits for
        seen_by_the_writer = session.scalar(select(func.count()).select_from(Message))
    filing.join()
    assert runner.stats.filed == total == counted(database, Message)
    assert seen_by_the_writer is not None and GROUP_SIZE <= seen_by_the_writer < total, \
        "the runner committed and stepped aside mid-batch for the waiting writer"


def test_a_bad_mail_in_a_group_costs_only_itself(database: Database, settings: Settings) -> None:
    """The group's savepoint is undone and its mails filed one by one: the others are filed, the bad one
    counts an attempt and stays spooled (quarantined at the last attempt)."""
    spool_mails(database, GROUP_SIZE)
    runner = SpoolRunner(database, settings)
    parsed = [parse_spooled(item) for item in runner._claim()]
    poisoned = parsed[5]._replace(result=replace(parsed[5].result, sender=None))  # the pipeline fails on it
    assert runner.file_parsed(parsed[:5] + [poisoned] + parsed[6:])
    assert runner.stats.filed == GROUP_SIZE - 1 == counted(database, Message)
    assert counted(database, SpoolItem) == 1 and runner.stats.retried == 1
    with database.read() as session:
        (attempts, error) = session.execute(select(SpoolItem.attempts, SpoolItem.last_error)).one()
    assert attempts == 1 and "AttributeError" in error
