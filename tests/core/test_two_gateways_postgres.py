"""Gateways filing mail concurrently never split a thread over two tickets nor store one mail twice."""

from __future__ import annotations

from datetime import timedelta

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.db import Database, open_database
from core.errors import StorageError
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import Message, QuarantineItem, SpoolItem, Ticket, utcnow
from core.notify import Outbound
from core.pipeline import Delivery, run_pipeline
from core.schema import upgrade
from core.settings import HelpdeskSettings, load_settings
from mailgate.parse import parse_message
from testkit import Daemon, daemons_sharing, make_mail, wait_for, write_config

CONVERSATIONS = 50
REPLIES = 2
DUPLICATED_MAILS = 30
SENDERS = 12
SETTLE_SECONDS = 120


@dataclass(frozen=True)
class Conversation:
    """An original mail and replies to it, all from one customer."""

    customer: str
    mails: tuple[EmailMessage, ...]

    @property
    def message_ids(self) -> set[str]:
        return {_id(mail) for mail in self.mails}


@dataclass(frozen=True)
class Filed:
    """What the database holds once the spool is empty: each Message-ID's tickets and flags."""

    tickets: int
    copies: dict[str, int]
    ticket_of: dict[str, int]
    unverified: set[str]
    quarantined: list[str]


def _id(mail: EmailMessage) -> str:
    return str(mail["Message-ID"]).strip()


def conversation(number: int) -> Conversation:
    customer = f"customer{number % 5}@outside.test"
    original = make_mail(subject=f"Conversation {number}", sender=f"Customer <{customer}>",
                         message_id=make_msgid(domain="outside.test"), body=f"Original {number}")
    replies = tuple(make_mail(subject=f"Re: Conversation {number}", sender=f"Customer <{customer}>",
                              in_reply_to=original["Message-ID"], references=original["Message-ID"],
                              body=f"Reply {reply} to {number}") for reply in range(REPLIES))
    return Conversation(customer, (original, *replies))


def send_together(groups: list[list[tuple[Daemon, EmailMessage, str]]]) -> None:
    """Send each group's mails at one moment (a barrier), many groups at once from a thread pool."""
    jobs = []
    for group in groups:
        barrier = threading.Barrier(len(group), timeout=60)
        jobs += [(barrier, *job) for job in group]

    def send(job: tuple[threading.Barrier, Daemon, EmailMessage, str]) -> None:
        barrier, gateway, mail, sender = job
        barrier.wait()
        gateway.send(mail.as_bytes(), sender=sender)

    assert max(len(group) for group in groups) <= SENDERS
    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(send, jobs))  # re-raises a failed send


def in_rounds(url: str, groups: list[list[tuple[Daemon, EmailMessage, str]]]) -> None:
    """One group at a time, each filed before the next: both runners then wake for the same few mails.

    Sent in one burst, the mail would mostly be filed by one runner while the other waits on its
    spool rows; small rounds are what makes the two decide about one thread at the same moment.
    """
    for group in groups:
        send_together([group])
        settled(url)


def settled(url: str) -> Filed:
    """Wait until every spooled mail was filed or quarantined, then read what the database holds."""
    db = open_database(url)
    try:
        def spool_empty() -> bool:
            with db.read() as session:
                return session.scalar(select(func.count()).select_from(SpoolItem)) == 0

        wait_for(spool_empty, timeout=SETTLE_SECONDS)
        with db.read() as session:
            rows = session.execute(select(Message.message_id, Message.ticket_id, Message.unverified_sender)).all()
            copies: dict[str, int] = {}
            for row in rows:
                copies[row.message_id] = copies.get(row.message_id, 0) + 1
            return Filed(tickets=session.scalar(select(func.count()).select_from(Ticket)) or 0,
                         copies=copies, ticket_of={r.message_id: r.ticket_id for r in rows},
                         unverified={r.message_id for r in rows if r.unverified_sender},
                         quarantined=list(session.scalars(select(QuarantineItem.reason))))
    finally:
        db.dispose()


def assert_one_ticket_per_conversation(filed: Filed, conversations: list[Conversation]) -> None:
    assert filed.quarantined == []
    assert all(count == 1 for count in filed.copies.values())
    tickets = []
    for talk in conversations:
        assert talk.message_ids <= filed.ticket_of.keys(), "a mail of the conversation was not filed"
        on = {filed.ticket_of[i] for i in talk.message_ids}
        assert len(on) == 1, f"{talk.customer}'s conversation was split over tickets {on}"
        tickets += on
    assert len(set(tickets)) == len(conversations) == filed.tickets
    originals = {_id(talk.mails[0]) for talk in conversations}
    # a reply to one's own mail proves no sender (core.threads): it may be flagged; an original never is
    assert not filed.unverified & originals


@pytest.fixture
def gateways(postgres_url: str, tmp_path: Path) -> Iterator[list[Daemon]]:
    """Two real gateways, each with its own settings and port, sharing one PostgreSQL database."""
    with daemons_sharing(postgres_url, tmp_path) as started:
        yield started


def test_the_same_mail_sent_to_both_gateways_is_stored_once(gateways: list[Daemon],
                                                            postgres_url: str) -> None:
    mails = [make_mail(subject=f"Mail {n}", sender=f"customer{n}@outside.test") for n in range(DUPLICATED_MAILS)]
    in_rounds(postgres_url, [[(gateway, mail, mail["From"]) for gateway in gateways] for mail in mails])
    filed = settled(postgres_url)
    assert filed.quarantined == []
    assert filed.copies == {_id(mail): 1 for mail in mails}
    assert filed.tickets == DUPLICATED_MAILS


def test_an_original_and_its_replies_at_two_gateways_make_one_ticket(gateways: list[Daemon],
                                                                      postgres_url: str) -> None:
    conversations = [conversation(n) for n in range(CONVERSATIONS)]
    groups = []
    for number, talk in enumerate(conversations):
        first, other = gateways[number % 2], gateways[(number + 1) % 2]
        original, *replies = talk.mails
        groups.append([(first, original, talk.customer)] + [(other, reply, talk.customer) for reply in replies])
    in_rounds(postgres_url, groups)
    assert_one_ticket_per_conversation(settled(postgres_url), conversations)


def test_replies_filed_before_their_original_join_its_ticket(daemon: Daemon, db_url: str) -> None:
    """One gateway, mail out of order: every reply is filed before its original arrives."""
    conversations = [conversation(n) for n in range(CONVERSATIONS // 2)]
    send_together([[(daemon, reply, talk.customer)] for talk in conversations for reply in talk.mails[1:]])
    assert len(settled(db_url).ticket_of) == len(conversations) * REPLIES
    send_together([[(daemon, talk.mails[0], talk.customer)] for talk in conversations])
    assert_one_ticket_per_conversation(settled(db_url), conversations)


def file_mail(session: Session, helpdesk: HelpdeskSettings, mail: EmailMessage) -> str:
    """Run one mail through the inbound pipeline in the caller's transaction; returns its outcome."""
    message = parse_message(mail.as_bytes(), Envelope("smtp", "", ("support@example.com",)))
    outbound = Outbound("postdesk.test", timedelta(hours=1))
    return run_pipeline(Delivery(session, message, helpdesk, utcnow(), outbound)).outcome


def waiting_for_a_lock(db: Database) -> bool:
    with db.read() as session:
        return bool(session.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE datname = current_database() AND wait_event_type = 'Lock'")))


@pytest.mark.parametrize(("first", "second", "retried"), [(0, 1, "appended"), (1, 0, "appended"), (0, 0, "duplicate")],
                         ids=["reply-races-its-original", "original-races-its-reply", "same-mail-twice"])
def test_the_loser_of_a_race_fails_whole_and_its_retry_joins_the_winner(postgres_url: str, tmp_path: Path,
                                                                          first: int, second: int,
                                                                          retried: str) -> None:
    """What two gateways do in the worst interleaving: the second decides before the first commits."""
    helpdesk = load_settings(write_config(tmp_path, postgres_url)).helpdesk
    db = open_database(postgres_url)
    upgrade(db)
    with db.write() as session:
        ensure_default_group(session, helpdesk)
    talk = conversation(0)
    loser_failed: list[BaseException] = []

    def file_the_second() -> None:
        with pytest.raises(StorageError) as failure:
            with db.write() as session:
                file_mail(session, helpdesk, talk.mails[second])
        loser_failed.append(failure.value)

    with db.write() as session:
        assert file_mail(session, helpdesk, talk.mails[first]) == "opened"
        racer = threading.Thread(target=file_the_second)
        racer.start()
        wait_for(lambda: waiting_for_a_lock(db))
    racer.join(30)
    assert loser_failed, "the second gateway's transaction went through beside the first"
    with db.write() as session:
        assert file_mail(session, helpdesk, talk.mails[second]) == retried
    with db.read() as session:
        filed = set(session.scalars(select(Message.message_id)))
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1
    db.dispose()
    assert filed == {_id(talk.mails[first]), _id(talk.mails[second])}
