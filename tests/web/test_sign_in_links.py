"""One-time sign-in links mailed to workers (issue 14, sign-in): the same answer for any address, one use,
fifteen minutes, a click on the page (a mail scanner's fetch uses nothing up), throttled."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core.accounts import LINKS_PER_ADDRESS
from core.db import Database
from core.desk import Helpdesk
from core.groups import ensure_default_group
from core.models import OutboxItem
from core.settings import Settings
from testkit import Clock, text_of
from web.app import SESSION_COOKIE, create_app

JANE = "jane@corp.test"
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def client(settings: Settings, database: Database, clock: Clock) -> Iterator[TestClient]:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
    desk = Helpdesk(settings, database, clock=clock)
    desk.add_worker(JANE, "Jane Doe", ["Support"])
    with TestClient(create_app(desk), base_url="http://127.0.0.1:8025", follow_redirects=False) as client:
        yield client


def ask(client: TestClient, email: str) -> str:
    form = client.get("/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post("/sign-in/link", data={"email": email, "csrf": csrf[1]})
    assert answer.status_code == 200
    return answer.text


def links(database: Database) -> list[str]:
    with database.read() as session:
        raws = session.scalars(select(OutboxItem.raw).where(OutboxItem.purpose == "sign_in_link")
                               .order_by(OutboxItem.id)).all()
    found = [re.search(r"http://127\.0\.0\.1:8025(/sign-in/link/\S+)", text_of(message_from_bytes(raw, policy=default)))
             for raw in raws]
    return [match[1] for match in found if match]


def use(client: TestClient, path: str) -> int:
    page = client.get(path)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf is not None
    return client.post(path, data={"csrf": csrf[1]}).status_code


def test_a_link_is_mailed_only_to_a_worker_but_the_answer_is_the_same(client: TestClient,
                                                                      database: Database) -> None:
    assert ask(client, JANE) == ask(client, "nobody@corp.test")
    (path,) = links(database)
    with database.read() as session:
        (rcpt,) = session.scalars(select(OutboxItem.rcpt_tos).where(OutboxItem.purpose == "sign_in_link")).all()
    assert rcpt == [JANE]
    assert client.get(path).status_code == 200 and SESSION_COOKIE not in client.cookies  # a fetch uses nothing
    assert use(client, path) == 303 and SESSION_COOKIE in client.cookies
    assert client.get("/").status_code == 200
    client.cookies.clear()
    assert use(client, path) == 401  # once only


def test_a_link_expires_after_fifteen_minutes_and_asking_too_often_mails_no_more(
        client: TestClient, database: Database, clock: Clock) -> None:
    for _ in range(LINKS_PER_ADDRESS + 2):
        ask(client, JANE)
    assert len(links(database)) == LINKS_PER_ADDRESS
    clock.now += timedelta(minutes=15, seconds=1)
    assert use(client, links(database)[0]) == 401
    assert use(client, "/sign-in/link/made-up-token") == 401
