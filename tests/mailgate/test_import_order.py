"""Real threaded mailboxes imported forward and reversed give the same tickets and the same recipients.

The sources are real mail with real threads: the mime4j test suite's mailing-list mbox (rlug, five
mails, one reply through the list), bogofilter's `good.mbx` (48 mails, several short threads), and
SpamAssassin's `easy_ham_2` (a folder of files, 1,400 mails of 2002 from mailing lists, where people
answer each other on and off the list and write from more than one address; all 4,149 of its ham
take `bench/import_order.py --corpus`, too long for the suite).
bench/import_order.py does the same over any corpus (all of ../shared/corpora/mail by default) and
explains any difference.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import open_database
from core.models import AddressRow, Message, TicketRecipient
from core.schema import upgrade
from core.settings import load_settings
from mailgate.importer import import_messages
from mailgate.mail_sources import SourcedMessage, read_messages
from testkit import CORPORA, write_config

pytestmark = [pytest.mark.corpus, pytest.mark.skipif(
    not CORPORA.is_dir(), reason=f"no corpora at {CORPORA} (see shared/corpora/README.md)")]

# (mbox, how many of its mails at least join another mail's ticket): a check that threading happened at all
THREADED_MBOXES = (("mail/mime4j-testmsgs/mbox/mbox.rlug", 0), ("mail/bogofilter-inputs/good.mbx", 1),
                   ("spam/spamassassin/easy_ham_2", 150))
Tickets = set[tuple[frozenset[str], frozenset[str]]]  # per ticket: its Message-IDs, its recipients


def tickets_after_import(folder: Path, messages: list[SourcedMessage]) -> Tickets:
    """Import into a fresh SQLite database, silently; every ticket as (its Message-IDs, its recipients)."""
    folder.mkdir()
    settings = load_settings(write_config(folder, f"sqlite:///{folder / 'postdesk.db'}",
                                          max_message_size=64 * 1024 * 1024))
    db = open_database(settings.database.url)
    try:
        upgrade(db)
        report = import_messages(db, settings, messages, notify=False)
        stats = report.stats
        assert (stats.filed + stats.duplicates + stats.quarantined, report.left_for_retry) == (len(messages), 0)
        with db.read() as session:
            ids: dict[int, set[str]] = {}
            for ticket_id, message_id in session.execute(select(Message.ticket_id, Message.message_id)):
                ids.setdefault(ticket_id, set()).add(message_id)
            people: dict[int, set[str]] = {}
            for ticket_id, email in session.execute(
                    select(TicketRecipient.ticket_id, AddressRow.email)
                    .join(AddressRow, AddressRow.id == TicketRecipient.address_id)):
                people.setdefault(ticket_id, set()).add(email)
    finally:
        db.dispose()
    return {(frozenset(ids[t]), frozenset(people.get(t, ()))) for t in ids}


@pytest.mark.parametrize(("mbox", "joined_at_least"), THREADED_MBOXES, ids=[m for m, _ in THREADED_MBOXES])
def test_forward_and_reverse_import_give_the_same_tickets(tmp_path: Path, mbox: str, joined_at_least: int) -> None:
    messages = list(read_messages(CORPORA / mbox))
    assert len(messages) > 1, f"{mbox} is read as an mbox or a folder of messages"
    forward = tickets_after_import(tmp_path / "forward", messages)
    reverse = tickets_after_import(tmp_path / "reverse", messages[::-1])
    assert (forward - reverse, reverse - forward) == (set(), set()), "tickets only forward, only reversed"
    filed = sum(len(ids) for ids, _ in forward)
    assert filed - len(forward) >= joined_at_least
