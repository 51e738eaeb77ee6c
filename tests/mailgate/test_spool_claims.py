"""Runners sharing a spool claim their rows first: no mail is parsed or filed by two of them (issue 16).

On PostgreSQL the claims skip rows another runner is locking; on SQLite they take the one write
lock in turn. Either way a claim is leased: a dead runner's rows are taken over when it runs out.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

import mailgate.runner as runner_module

from core.db import Database, open_database
from core.errors import PostdeskError
from core.inbound import Envelope
from core.models import Message, SpoolItem, utcnow
from core.settings import Settings
from mailgate.runner import SpoolRunner
from mailgate.spool import spool_messages
from mailgate.spool_claims import claim_batch, delete_claimed
from testkit import make_mail

MAILS = 240
SMTP = Envelope("smtp", "someone@outside.test", ("support@example.com",))


def spool(database: Database, count: int, first: int = 0) -> list[int]:
    return spool_messages(database, [(make_mail(sender=f"Customer {n} <c{n}@outside.test>", subject=f"Case {n}",
                                                body=f"Message number {n}.").as_bytes(), SMTP)
                                     for n in range(first, first + count)])


def stored(database: Database) -> tuple[int, int]:
    with database.read() as session:
        return (session.scalar(select(func.count()).select_from(Message)) or 0,
                session.scalar(select(func.count()).select_from(SpoolItem)) or 0)


def test_two_runners_never_parse_or_file_the_same_spool_row(database: Database, settings: Settings) -> None:
    spool(database, MAILS)
    runners = [SpoolRunner(open_database(settings.database.url), settings, batch_size=16) for _ in range(2)]
    start = threading.Barrier(2)

    def drain(runner: SpoolRunner) -> None:
        start.wait()
        runner.drain()

    threads = [threading.Thread(target=drain, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(r.stats.parsed for r in runners) == MAILS  # one parse a mail: no row was claimed twice
    assert sum(r.stats.filed for r in runners) == MAILS and sum(r.stats.duplicates for r in runners) == 0
    assert stored(database) == (MAILS, 0)


def test_a_dead_runners_rows_wait_for_its_lease_then_are_taken_over(database: Database, settings: Settings) -> None:
    first, second = spool(database, 2)
    with database.write() as session:
        session.execute(update(SpoolItem).where(SpoolItem.id == first)
                        .values(claimed_by="dead:1:gone", lease_until=utcnow() - timedelta(seconds=1)))
        session.execute(update(SpoolItem).where(SpoolItem.id == second)
                        .values(claimed_by="busy:2:alive", lease_until=utcnow() + timedelta(minutes=5)))
    runner = SpoolRunner(database, settings)
    runner.drain()
    assert runner.stats.parsed == 1 and runner.stats.filed == 1  # the lapsed claim only
    with database.read() as session:
        assert session.scalars(select(SpoolItem.id)).all() == [second]  # the live claim is left alone


def test_a_runner_that_outlived_its_lease_leaves_the_row_to_its_new_holder(database: Database) -> None:
    (spool_id,) = spool(database, 1)
    with database.write() as session:
        assert [row.id for row in claim_batch(session, "slow:1:a", 10, utcnow() - timedelta(minutes=10))] == [spool_id]
    with database.write() as session:  # the slow one's lease ran out: another takes the row over
        assert [row.id for row in claim_batch(session, "quick:2:b", 10, utcnow())] == [spool_id]
    with database.write() as session:
        assert delete_claimed(session, "slow:1:a", spool_id) is False
        assert delete_claimed(session, "quick:2:b", spool_id) is True


def test_a_failed_attempt_gives_the_row_back_for_the_next_look(database: Database, settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (spool_id,) = spool(database, 1)
    runner = SpoolRunner(database, settings)

    def broken(*_: object, **__: object) -> object:
        raise PostdeskError("a step failed")

    with monkeypatch.context() as patch:
        patch.setattr(runner_module, "run_pipeline", broken)
        runner.process_batch()
    with database.read() as session:
        row = session.get(SpoolItem, spool_id)
        assert row is not None and row.attempts == 1 and row.claimed_by is None and row.lease_until is None
    runner.drain()  # no lease to wait for: the next look files it
    assert stored(database) == (1, 0)


def test_a_restarted_daemon_files_at_once_what_its_dead_predecessor_had_claimed(database: Database,
                                                                                settings: Settings) -> None:
    import os
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host, later = socket.gethostname()[:30], utcnow() + timedelta(minutes=4)
    dead, alive, elsewhere = spool(database, 3)
    claims = {dead: f"{host}:{gone.stdout.strip()}:0a", alive: f"{host}:{os.getpid()}:0b", elsewhere: "far:1:0c"}
    with database.write() as session:
        for spool_id, holder in claims.items():
            session.execute(update(SpoolItem).where(SpoolItem.id == spool_id)
                            .values(claimed_by=holder, lease_until=later))
    runner = SpoolRunner(database, settings)
    stop = threading.Event()
    stop.set()
    runner.run(stop)  # looks for the dead first, then drains once
    assert runner.stats.filed == 1
    with database.read() as session:
        assert sorted(session.scalars(select(SpoolItem.id))) == [alive, elsewhere]


class Deadlock(Exception):
    sqlstate = "40P01"


@pytest.mark.parametrize("race", ["deadlock", "thread race"])
def test_a_race_with_another_runner_is_tried_again_at_once_with_the_parse_in_hand(
        database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, race: str) -> None:
    """Two runners may deadlock on a row their mails share, or open a ticket each for one thread at once;
    the loser tries again (and joins the winner's ticket), parsing nothing twice."""
    from sqlalchemy.exc import OperationalError

    from core.errors import ThreadRace

    lost = (OperationalError("UPDATE tickets ...", {}, Deadlock("deadlock detected")) if race == "deadlock"
            else ThreadRace("<x@y> already belongs to another ticket"))
    spool(database, 1)
    real, calls = runner_module.run_pipeline, []

    def deadlocked_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise lost
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner_module, "run_pipeline", deadlocked_once)
    runner = SpoolRunner(database, settings)
    assert runner.process_batch() is True
    assert (len(calls), runner.stats.parsed, runner.stats.filed, runner.stats.retried) == (2, 1, 1, 1)
    assert stored(database) == (1, 0)
