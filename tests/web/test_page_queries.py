"""The desk's pages cost a fixed number of SQL statements, however many tickets or messages they show
(issue 14: the list and a ticket must not grow a query per row)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

from core.db import Database
from core.desk import Helpdesk
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.settings import Settings
from mailgate.deliver import deliver
from testkit import make_mail
from web.app import create_app

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def desk(settings: Settings, database: Database) -> Helpdesk:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
    desk = Helpdesk(settings, database)
    desk.add_worker("jane@corp.test", "Jane Doe", ["Support"])
    desk.set_password("jane@corp.test", "correct horse battery")
    return desk


@pytest.fixture
def client(desk: Helpdesk) -> Iterator[TestClient]:
    with TestClient(create_app(desk), base_url="http://127.0.0.1:8025", follow_redirects=False) as client:
        form = client.get("/sign-in").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        client.post("/sign-in", data={"email": "jane@corp.test", "password": "correct horse battery",
                                      "csrf": csrf[1]})
        yield client


def statements(database: Database, client: TestClient, path: str) -> int:
    counted: list[str] = []

    def count(*args: object) -> None:
        counted.append(str(args[2]))

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    return len(counted)


def write(database: Database, settings: Settings, count: int, start: int = 0, thread: str | None = None) -> None:
    for number in range(start, start + count):
        sender = "Alice <alice@customer.test>" if thread else f"Customer {number} <c{number}@customer.test>"
        mail = make_mail(sender=sender, subject=f"Re: {thread}" if thread and number else thread or f"Case {number}",
                         body=f"Message {number}", message_id=f"<m{number}@customer.test>",
                         in_reply_to="<m0@customer.test>" if thread and number else None)
        deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))


def test_the_list_costs_as_many_statements_for_two_tickets_as_for_forty(
        client: TestClient, database: Database, settings: Settings) -> None:
    write(database, settings, 2)
    few = statements(database, client, "/")
    write(database, settings, 38, start=2)
    assert statements(database, client, "/") == few


def test_a_ticket_costs_as_many_statements_with_one_message_as_with_ten(
        client: TestClient, database: Database, settings: Settings, desk: Helpdesk) -> None:
    write(database, settings, 1, thread="Printer")
    mask = desk.tickets()[0]["mask"]
    one = statements(database, client, f"/tickets/{mask}")
    write(database, settings, 9, start=1, thread="Printer")
    assert desk.ticket(mask)["message_count"] == 10
    assert statements(database, client, f"/tickets/{mask}") == one
