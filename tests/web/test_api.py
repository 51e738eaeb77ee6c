"""The JSON API over HTTP (Starlette's test client on the real app and a real database): bearer tokens,
the CLI's field names, actions as the token's worker, all-or-nothing bulk, errors as JSON (issue 14, item 6)."""

from __future__ import annotations


from collections.abc import Iterator

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core.db import Database
from core.desk import Helpdesk
from core.models import AuditEntry, OutboxItem, Priority, Status, Ticket
from core.settings import Settings
from core.ticket_views import TicketFilter
from web_kit import UNKNOWN_MASK, JANE, desk_with_jane, printer_mails
from web.app import create_app

pytestmark = pytest.mark.sqlite_only  # the API adds no SQL of its own: core's tests cover both databases


@pytest.fixture
def desk(settings: Settings, database: Database) -> Helpdesk:
    return desk_with_jane(settings, database, printer_mails())


@pytest.fixture
def token(desk: Helpdesk) -> str:
    return desk.new_api_token(JANE, "script")


@pytest.fixture
def client(desk: Helpdesk, token: str) -> Iterator[TestClient]:
    with TestClient(create_app(desk), base_url="http://127.0.0.1:8025", follow_redirects=False,
                    headers={"authorization": f"Bearer {token}"}) as client:
        yield client


def masks(database: Database) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(Ticket.mask).order_by(Ticket.id)))


def statuses(database: Database) -> list[Status]:
    with database.read() as session:
        return list(session.scalars(select(Ticket.status).order_by(Ticket.id)))


def test_without_a_live_token_every_path_is_refused_alike_and_nothing_changes(
        client: TestClient, desk: Helpdesk, database: Database) -> None:
    mask = masks(database)[0]
    for headers in ({"authorization": ""}, {"authorization": "Bearer pd_not-a-token"},
                    {"authorization": "Basic amFuZTpwdw=="}):
        for path in (f"/api/v1/tickets/{mask}/close", f"/api/v1/tickets/{UNKNOWN_MASK}/close"):
            refused = client.post(path, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert set(refused.json()) == {"error"} and "set-cookie" not in refused.headers
        assert client.get("/api/v1/tickets", headers=headers).status_code == 401
    assert desk.revoke_api_tokens(JANE) == 1
    revoked = client.post(f"/api/v1/tickets/{mask}/close")
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    assert statuses(database) == [Status.OPEN, Status.OPEN]


def test_lists_search_and_a_ticket_have_the_field_names_of_the_cli_json(client: TestClient, desk: Helpdesk,
                                                                         database: Database) -> None:
    listing = client.get("/api/v1/tickets")
    assert listing.status_code == 200 and listing.headers["content-type"] == "application/json"
    assert listing.json() == desk.tickets() and len(listing.json()) == 2
    page = client.get("/api/v1/tickets", params={"sort": "created", "reverse": "true", "limit": 1, "page": 2})
    assert page.json() == desk.tickets(TicketFilter(sort="created", descending=False, limit=1, page=2))
    assert client.get("/api/v1/tickets", params={"status": "closed"}).json() == []
    first = masks(database)[0]
    shown = client.get(f"/api/v1/tickets/{first[:7]}")
    assert shown.status_code == 200 and shown.json() == desk.ticket(first)
    found = client.get("/api/v1/search", params={"q": "printer 1"}).json()
    assert [row["mask"] for row in found] == [masks(database)[1]] and set(found[0]) == set(listing.json()[0])


def test_actions_change_the_ticket_as_the_tokens_worker_and_a_reply_never_carries_her_address(
        client: TestClient, database: Database) -> None:
    first, second = masks(database)
    assigned = client.post(f"/api/v1/tickets/{first}/assign", json={"owner": "me"})
    assert assigned.json() == {"changed": [{"mask": first, "said": f"owner {JANE}", "changed": True,
                                            "status": "open"}]}
    assert client.get("/api/v1/tickets", params={"owner": "me"}).json()[0]["mask"] == first
    assert client.post(f"/api/v1/tickets/{first}/priority", json={"priority": "urgent"}).status_code == 200
    replied = client.post(f"/api/v1/tickets/{first}/reply", json={"text": "Unplug it, then plug it in again."})
    assert replied.status_code == 200 and replied.json()["changed"][0]["said"].startswith("reply filed")
    closed = client.post(f"/api/v1/tickets/{second}/close")
    assert closed.json()["changed"] == [{"mask": second, "said": "closed", "changed": True, "status": "closed"}]
    with database.read() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == first)).one()
        assert ticket.priority is Priority.URGENT and ticket.owner is not None and ticket.owner.email == JANE
        (raw,) = session.scalars(select(OutboxItem.raw).where(OutboxItem.purpose == "reply")).all()
        actors = set(session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "status")))
    assert b"Unplug" in raw.replace(b"=\r\n", b"") and JANE.encode() not in raw
    assert actors == {JANE} and statuses(database)[1] is Status.CLOSED


def test_bulk_is_all_or_nothing(client: TestClient, database: Database) -> None:
    first, second = masks(database)
    refused = client.post("/api/v1/bulk/close", json={"masks": [first, UNKNOWN_MASK]})
    assert refused.status_code == 404 and UNKNOWN_MASK in refused.json()["error"]
    assert statuses(database) == [Status.OPEN, Status.OPEN]
    done = client.post("/api/v1/bulk/close", json={"masks": [first, second]})
    assert [c["said"] for c in done.json()["changed"]] == ["closed", "closed"]
    assert statuses(database) == [Status.CLOSED, Status.CLOSED]


def test_bad_requests_get_json_errors_with_their_status_and_change_nothing(client: TestClient,
                                                                           database: Database) -> None:
    mask = masks(database)[0]
    cases = [
        (client.post(f"/api/v1/tickets/{mask}/comment", content=b'{"text": "half', headers={
            "content-type": "application/json"}), 400, "not valid JSON"),
        (client.post(f"/api/v1/tickets/{mask}/comment", data={"text": "a form"}), 400, "as JSON"),
        (client.post(f"/api/v1/tickets/{mask}/comment", json=["text"]), 400, "JSON object"),
        (client.post(f"/api/v1/tickets/{mask}/priority", json={"priority": "whenever"}), 400, "unknown priority"),
        (client.post(f"/api/v1/tickets/{mask}/assign", json={"owner": 7}), 400, "must be a string"),
        (client.post(f"/api/v1/tickets/{mask}/wait", json={}), 400, "until"),
        (client.post("/api/v1/bulk/close", json={"masks": []}), 400, "masks is missing"),
        (client.get("/api/v1/tickets", params={"status": "lost"}), 400, "no status"),
        (client.get("/api/v1/tickets", params={"page": "two"}), 400, "whole number"),
        (client.get("/api/v1/search"), 400, "q is missing"),
        (client.get(f"/api/v1/tickets/{UNKNOWN_MASK}"), 404, f"no ticket with mask {UNKNOWN_MASK}"),
        (client.post(f"/api/v1/tickets/{UNKNOWN_MASK}/close"), 404, "no ticket"),
        (client.post(f"/api/v1/tickets/{mask}/explode"), 404, "no action"),
        (client.post("/api/v1/bulk/reply", json={"masks": [mask]}), 404, "no bulk action"),
        (client.post(f"/api/v1/tickets/{mask}/assign", json={"owner": "bob@corp.test"}), 404, "no worker"),
        (client.get("/api/v1/nothing/here"), 404, "no such path"),
        (client.delete(f"/api/v1/tickets/{mask}"), 405, "not allowed"),
        (client.get(f"/api/v1/tickets/{mask}/close"), 405, "not allowed"),
    ]
    for answer, status, words in cases:
        assert (answer.status_code, answer.headers["content-type"]) == (status, "application/json"), answer.text
        assert words in answer.json()["error"], answer.json()
    with database.read() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).one()
        assert (ticket.status, ticket.priority, ticket.owner) == (Status.OPEN, Priority.NORMAL, None)
    assert client.post(f"/api/v1/tickets/{mask}/wait", json={"for": "3d"}).json()["changed"][0]["status"] == "waiting"
