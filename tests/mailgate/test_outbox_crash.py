"""kill -9 while a real daemon sends: at most the mail in flight goes out twice (issue 11, item 7)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.compose import Outgoing, Rendered, mailbox
from core.mail_purpose import MailPurpose
from core.db import Database, open_database
from core.models import OutboxItem, OutboxState, utcnow
from core.outbox import LEASE, OutgoingMail, queue_mail
from core.schema import upgrade
from core.settings import load_settings
from mailgate.outbox_sender import LEASE_IN_TIMEOUTS, OutboxSender
from testkit import SMARTHOST_RECEIVED, Daemon, free_port, wait_for, write_config

MAILS = 150
KILL_AT = 60  # the smarthost has this mail in hand when the daemon dies: the mail in flight


@dataclass
class SlowSmarthost:
    """A smarthost that takes its time over each mail, and kills the daemon before its 250 for the KILL_AT-th."""

    kill: Callable[[], None]
    port: int = field(default_factory=free_port)
    received: list[bytes] = field(default_factory=list)
    controller: Any = None

    def start(self) -> SlowSmarthost:
        from aiosmtpd.controller import Controller

        smarthost = self

        class Slow:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                smarthost.received.append(envelope.original_content)
                SMARTHOST_RECEIVED.append((list(envelope.rcpt_tos), envelope.original_content))
                await asyncio.sleep(0.005)
                if len(smarthost.received) == KILL_AT:
                    smarthost.kill()  # the mail is kept here, but the daemon never hears the 250
                return "250 2.0.0 kept"

        self.controller = Controller(Slow(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def message_ids(self) -> list[str]:
        return [str(message_from_bytes(raw, policy=default)["Message-ID"]) for raw in self.received]


def queue_replies(db: Database, count: int) -> list[str]:
    now = utcnow()
    ids = []
    with db.write() as session:
        for number in range(count):
            mail = Outgoing(sender=mailbox("support@example.com", "Support"), to=[mailbox("alice@customer.test")],
                            subject=f"case {number}", body=Rendered("Hello from the helpdesk.\n", "<p>Hello</p>\n"))
            item = queue_mail(session, OutgoingMail(mail, MailPurpose.WORKER_REPLY, "support@example.com",
                                                    ("alice@customer.test",), None),
                              filters=(), hostname="postdesk.test", now=now)
            assert item is not None
            ids.append(item.message_id)
    return ids


def states(db: Database) -> dict[str, OutboxState]:
    with db.read() as session:
        return {row.message_id: row.state for row in session.execute(select(OutboxItem.message_id, OutboxItem.state))}


@pytest.mark.sqlite_only  # PostgreSQL's claims (SKIP LOCKED) are tested by two senders in test_outbox_sender
def test_kill_9_while_sending_repeats_at_most_the_mail_in_flight(db_url: str, tmp_path: Path) -> None:
    daemon: Daemon | None = None

    def kill_daemon() -> None:
        assert daemon is not None and daemon.process is not None
        daemon.process.kill()
        daemon.process.wait()

    smarthost = SlowSmarthost(kill_daemon).start()
    config = write_config(tmp_path, db_url, relay_port=smarthost.port)
    db = open_database(db_url)
    try:
        upgrade(db)
        ids = queue_replies(db, MAILS)
        daemon = Daemon(config, tmp_path / "daemon.log").start()
        process = daemon.process
        assert process is not None
        wait_for(lambda: process.poll() is not None, timeout=60)  # killed by the smarthost, mid-batch
        in_flight = smarthost.message_ids()[KILL_AT - 1]

        daemon.start()
        wait_for(lambda: set(smarthost.message_ids()) == set(ids), timeout=60)  # none waits for a lease
        assert daemon.stop() == 0, (tmp_path / "daemon.log").read_text()
        assert Counter(smarthost.message_ids()).most_common(1)[0][1] == 1
        assert [i for i, state in states(db).items() if state is not OutboxState.SENT] == [in_flight]

        # The mail in flight is in doubt: once its lease has run out, it is sent again, and it alone.
        relay = load_settings(config).relay
        later = utcnow() + max(LEASE, timedelta(seconds=relay.timeout_seconds * LEASE_IN_TIMEOUTS + 1))
        assert OutboxSender(db, relay, "postdesk.test", clock=lambda: later).send_due() == 1
        repeated = {i: n for i, n in Counter(smarthost.message_ids()).items() if n > 1}
        assert repeated == {in_flight: 2}
        assert set(states(db).values()) == {OutboxState.SENT}
    finally:
        if daemon is not None and daemon.process is not None and daemon.process.poll() is None:
            daemon.stop()
        smarthost.controller.stop()
        db.dispose()
