"""The web desk over HTTP (Starlette's test client on the real app and a real database): sign-in, CSRF,
throttling, what a stranger learns, the list, a ticket, its actions, collisions, size limits (issue 14)."""

from __future__ import annotations


import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core.accounts import FAILURES_PER_ADDRESS
from core.db import Database
from core.desk import Helpdesk
from core.models import AuditEntry, OutboxItem, Status, Ticket
from core.settings import Settings
from web_kit import UNKNOWN_MASK, JANE, PASSWORD, desk_with_jane, printer_mails
from web.app import SESSION_COOKIE, create_app

pytestmark = pytest.mark.sqlite_only  # the desk adds no SQL of its own: core's tests cover both databases


@pytest.fixture
def desk(settings: Settings, database: Database) -> Helpdesk:
    return desk_with_jane(settings, database, printer_mails())


@pytest.fixture
def client(desk: Helpdesk) -> Iterator[TestClient]:
    with TestClient(create_app(desk), base_url="http://127.0.0.1:8025", follow_redirects=False) as client:
        yield client


def masks(database: Database) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(Ticket.mask).order_by(Ticket.id)))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found[1]


def seen_of(html: str) -> str:
    found = re.search(r'name="seen" value="([^"]+)"', html)
    assert found is not None
    return found[1]


def sign_in(client: TestClient, email: str = JANE, password: str = PASSWORD) -> str:
    """Signs in; returns the session's CSRF token as the list page carries it."""
    form = client.get("/sign-in")
    answer = client.post("/sign-in", data={"email": email, "password": password, "csrf": csrf_of(form.text),
                                           "next": "/"})
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)


def test_a_stranger_learns_nothing_of_a_mask_and_every_answer_carries_the_safety_headers(
        client: TestClient, database: Database) -> None:
    real, = masks(database)[:1]
    answers = [client.get(f"/tickets/{mask}") for mask in (real, UNKNOWN_MASK)]
    assert [a.status_code for a in answers] == [303, 303]
    assert all(a.headers["location"].startswith("/sign-in?next=") for a in answers)
    page = client.get("/sign-in")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and "<script src=\"/static/desk.js\"" in page.text


def test_sign_in_refuses_wrong_passwords_alike_throttles_guessing_and_needs_its_form_token(
        client: TestClient, database: Database) -> None:
    client.get("/sign-in")
    form = client.post("/sign-in", data={"email": JANE, "password": PASSWORD})
    assert form.status_code == 403 and SESSION_COOKIE not in client.cookies  # no form token: a fresh form
    for attempt in range(FAILURES_PER_ADDRESS):
        refused = client.post("/sign-in", data={"email": JANE, "password": f"guess {attempt} wrong",
                                                "csrf": csrf_of(form.text)})
        assert refused.status_code == 401 and "wrong address or password" in refused.text
        form = refused
    throttled = client.post("/sign-in", data={"email": JANE, "password": PASSWORD, "csrf": csrf_of(form.text)})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert SESSION_COOKIE not in client.cookies
    with database.read() as session:
        assert len(session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_in_failed")).all()) == 5


def test_the_list_shows_the_open_tickets_and_a_ticket_its_conversation(client: TestClient,
                                                                      database: Database) -> None:
    sign_in(client)
    listing = client.get("/")
    assert listing.status_code == 200 and all(mask in listing.text for mask in masks(database))
    page = client.get(f"/tickets/{masks(database)[0]}")
    assert page.status_code == 200 and "It broke." in page.text and "alice0@customer.test" in page.text
    assert client.get(f"/tickets/{UNKNOWN_MASK}").status_code == 404
    assert client.get("/?status=closed").text.count('class="ticket"') == 0


def test_a_change_without_the_session_token_changes_nothing(client: TestClient, database: Database) -> None:
    sign_in(client)
    mask = masks(database)[0]
    page = client.get(f"/tickets/{mask}").text
    for token in ("", "forged"):
        refused = client.post(f"/tickets/{mask}/close", data={"csrf": token, "seen": seen_of(page)})
        assert refused.status_code == 403
    with database.read() as session:
        assert session.scalars(select(Ticket.status).where(Ticket.mask == mask)).one() is Status.OPEN


def test_close_reply_and_bulk_act_as_the_signed_in_worker_and_the_customer_never_sees_her_address(
        client: TestClient, database: Database) -> None:
    csrf = sign_in(client)
    first, second = masks(database)
    page = client.get(f"/tickets/{first}").text
    replied = client.post(f"/tickets/{first}/reply", data={"csrf": csrf, "seen": seen_of(page),
                                                           "text": "Unplug it, then plug it in again."})
    assert replied.status_code == 303 and "reply+filed" in replied.headers["location"]
    with database.read() as session:
        (raw,) = session.scalars(select(OutboxItem.raw).where(OutboxItem.purpose == "reply")).all()
    assert b"Unplug it" in raw or b"Unplug" in raw.replace(b"=\r\n", b"")
    assert JANE.encode() not in raw
    bulk = client.post("/bulk", data={"csrf": csrf, "mask": [first, second], "action": "close"})
    assert bulk.status_code == 303
    with database.read() as session:
        assert set(session.scalars(select(Ticket.status))) == {Status.CLOSED}
        actors = set(session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "status")))
    assert actors == {JANE}


def test_a_change_sent_from_an_out_of_date_page_is_not_applied(client: TestClient, database: Database,
                                                                settings: Settings) -> None:
    csrf = sign_in(client)
    mask = masks(database)[0]
    stale = seen_of(client.get(f"/tickets/{mask}").text)
    client.post(f"/tickets/{mask}/priority", data={"csrf": csrf, "seen": stale, "priority": "high"})
    again = client.post(f"/tickets/{mask}/close", data={"csrf": csrf, "seen": stale})
    assert again.status_code == 409 and "changed since you opened it" in again.text
    with database.read() as session:
        assert session.scalars(select(Ticket.status).where(Ticket.mask == mask)).one() is Status.OPEN
    fresh = seen_of(again.text)
    assert client.post(f"/tickets/{mask}/close", data={"csrf": csrf, "seen": fresh}).status_code == 303


def test_an_upload_over_the_limit_gets_413_and_changes_nothing(client: TestClient, database: Database,
                                                                settings: Settings) -> None:
    csrf = sign_in(client)
    mask = masks(database)[0]
    page = client.get(f"/tickets/{mask}").text
    big = b"x" * (settings.web.max_upload_bytes + 1)
    answer = client.post(f"/tickets/{mask}/reply", data={"csrf": csrf, "seen": seen_of(page), "text": "see file"},
                         files={"attachments": ("big.bin", big, "application/octet-stream")})
    assert answer.status_code == 413
    with database.read() as session:
        assert session.scalars(select(OutboxItem).where(OutboxItem.purpose == "reply")).all() == []


def test_a_revoked_session_is_signed_out_and_a_new_ticket_form_keeps_what_was_typed(
        client: TestClient, database: Database, desk: Helpdesk) -> None:
    csrf = sign_in(client)
    form = client.get("/new")
    assert form.status_code == 200 and 'name="subject"' in form.text and 'name="notify" checked' in form.text
    refused = client.post("/new", data={"csrf": csrf, "to": "bob@customer.test", "subject": "", "text": "Hello"})
    assert refused.status_code == 400 and "subject is missing" in refused.text and "bob@customer.test" in refused.text
    opened = client.post("/new", data={"csrf": csrf, "to": "bob@customer.test", "subject": "Your order",
                                       "text": "It ships Monday.", "group": "Support", "priority": "high"})
    assert opened.status_code == 303  # notify unchecked: opened without mailing anyone
    with database.read() as session:
        assert [r for r in session.scalars(select(OutboxItem.rcpt_tos)) if "bob@customer.test" in r] == []
    desk.revoke_sessions(JANE)
    assert client.get("/").status_code == 303


def test_the_badge_counts_tickets_awaiting_an_answer_and_the_list_refreshes_by_its_rows(
        client: TestClient, database: Database) -> None:
    csrf = sign_in(client)
    first, second = masks(database)
    assert re.search(r'id="badge"[^>]*>2<', client.get("/").text)
    rows = client.get("/?fragment=rows")
    assert rows.headers["x-badge"] == "2" and "<html" not in rows.text and rows.text.count('class="ticket"') == 2
    page = client.get(f"/tickets/{first}").text
    client.post(f"/tickets/{first}/reply", data={"csrf": csrf, "seen": seen_of(page), "text": "On it."})
    assert client.get("/?fragment=rows").headers["x-badge"] == "1"
    assert second in client.get("/?fragment=rows").text


def test_forwarded_addresses_are_believed_only_from_a_trusted_proxy(settings: Settings, desk: Helpdesk,
                                                                    database: Database) -> None:
    from dataclasses import replace

    for trusted, seen in (((), "testclient"), (("testclient",), "203.0.113.9")):
        behind_proxy = Helpdesk(replace(settings, web=replace(settings.web, trusted_proxies=trusted)), database)
        with TestClient(create_app(behind_proxy), follow_redirects=False) as client:
            form = client.get("/sign-in")
            client.post("/sign-in", data={"email": JANE, "password": "not her password", "csrf": csrf_of(form.text)},
                        headers={"x-forwarded-for": "198.51.100.7, 203.0.113.9"})
        with database.read() as session:
            latest = session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "sign_in_failed")
                                     .order_by(AuditEntry.id.desc())).first()
        assert latest == f"{JANE} from {seen}"


def test_a_page_weighs_under_150_kb_with_its_css_and_script(client: TestClient) -> None:
    sign_in(client)
    weight = sum(len(client.get(path).content) for path in ("/", "/static/desk.css", "/static/desk.js",
                                                            "/static/favicon.svg"))
    assert weight < 150 * 1024
