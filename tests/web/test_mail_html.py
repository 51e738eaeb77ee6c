"""HTML mail on the web desk: sanitised by nh3, remote images held back until asked, shown in a sandbox of
its own that runs nothing and is not in the desk's origin (issue 14, item 4)."""

from __future__ import annotations


import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from core.db import Database
from core.desk import Helpdesk
from core.models import Ticket
from core.settings import Settings
from testkit import make_mail
from web_kit import UNKNOWN_MASK, JANE, PASSWORD, desk_with_jane
from web.app import create_app
from web.mail_html import sanitise, sanitised

PIXEL = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
TRACKER = "https://tracker.example/p.gif"
HOSTILE_HTML = (f'<p>Hello <b>team</b></p><script>alert("script")</script>'
                f'<img src=x onerror="alert(\'img\')"><a href="javascript:alert(\'link\')">click</a>'
                f'<iframe src="https://evil.example/"></iframe><img src="{TRACKER}" alt="tracker">'
                f'<img src="{PIXEL}" alt="logo"><a href="https://example.org/help">help</a>')
pytestmark = pytest.mark.sqlite_only


def html_mail(html: str, subject: str = "Formatted") -> bytes:
    mail = make_mail(subject=subject, body="Hello team (plain text).")
    mail.add_alternative(html, subtype="html")
    return mail.as_bytes()


@pytest.fixture
def desk(settings: Settings, database: Database) -> Helpdesk:
    return desk_with_jane(settings, database, [html_mail(HOSTILE_HTML)])


@pytest.fixture
def client(desk: Helpdesk) -> Iterator[TestClient]:
    with TestClient(create_app(desk), base_url="http://127.0.0.1:8025", follow_redirects=False) as client:
        yield client


def the_mask(database: Database) -> str:
    with database.read() as session:
        return session.scalars(select(Ticket.mask)).one()


def sign_in(client: TestClient) -> None:
    form = client.get("/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post("/sign-in", data={"email": JANE, "password": PASSWORD, "csrf": csrf[1], "next": "/"})
    assert answer.status_code == 303


def test_the_html_view_runs_nothing_and_holds_remote_images_back_until_asked(client: TestClient,
                                                                           database: Database) -> None:
    sign_in(client)
    view = f"/tickets/{the_mask(database)}/messages/1/html"
    shown = client.get(view)
    assert shown.status_code == 200 and "<b>team</b>" in shown.text
    lowered = shown.text.lower()
    assert all(word not in lowered for word in ("<script", "onerror", "javascript:", "<iframe", "evil.example"))
    assert TRACKER not in shown.text and PIXEL in shown.text and "1 remote image blocked" in shown.text
    assert 'href="https://example.org/help"' in shown.text and 'rel="noopener noreferrer"' in shown.text
    csp = shown.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert "img-src data:;" in csp and "script" not in csp
    assert shown.headers["x-content-type-options"] == "nosniff" and shown.headers["x-frame-options"] == "SAMEORIGIN"
    with_images = client.get(view, params={"images": "1"})
    assert TRACKER in with_images.text and "blocked" not in with_images.text and PIXEL in with_images.text
    assert "<script" not in with_images.text.lower()
    assert "img-src data: https: http:" in with_images.headers["content-security-policy"]


def test_the_ticket_page_frames_the_html_in_a_sandbox_and_offers_the_remote_images(client: TestClient,
                                                                                 database: Database) -> None:
    sign_in(client)
    mask = the_mask(database)
    page = client.get(f"/tickets/{mask}")
    frame = re.search(r"<iframe[^>]*>", page.text)
    assert frame is not None
    assert f'src="/tickets/{mask}/messages/1/html"' in frame[0] and " sandbox " in frame[0] and "title=" in frame[0]
    assert f'href="/tickets/{mask}/messages/1/html?images=1"' in page.text and "Show remote images" in page.text
    assert "<script>alert" not in page.text  # the text part is shown escaped, the HTML only in the frame
    csp = page.headers["content-security-policy"]
    assert "frame-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_a_stranger_gets_the_sign_in_and_a_message_without_html_or_out_of_range_gets_404(
        client: TestClient, database: Database, desk: Helpdesk) -> None:
    mask = the_mask(database)
    refused = client.get(f"/tickets/{mask}/messages/1/html")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/sign-in?next=")
    sign_in(client)
    assert client.get(f"/tickets/{mask}/messages/2/html").status_code == 404
    assert client.get(f"/tickets/{mask}/messages/0/html").status_code == 404
    assert client.get(f"/tickets/{UNKNOWN_MASK}/messages/1/html").status_code == 404
    assert desk.message_html(mask, 1).startswith("<") and desk.html_message_numbers(mask) == {1}


def test_sanitised_keeps_formatting_and_drops_everything_active() -> None:
    dirty = ('<div onclick="x()" style="color:red;background:url(https://t.example/b.png);position:fixed">'
             '<form action="/bulk"><input name="mask"></form><style>body{}</style><object data="x"></object>'
             '<a href="data:text/html,hi">d</a><a href="/bulk">rel</a><a href="mailto:a@b.test">m</a>'
             '<font color="blue">f</font><table><tr><td colspan="2">c</td></tr></table></div>')
    clean = sanitised(dirty, images=True)
    assert all(word not in clean for word in ("onclick", "<form", "<input", "<style", "<object", "url(", "fixed",
                                              "data:text", "/bulk"))
    assert 'style="color:red"' in clean and 'href="mailto:a@b.test"' in clean and 'target="_blank"' in clean
    assert '<font color="blue">' in clean and '<td colspan="2">' in clean


def test_sanitise_counts_the_remote_images_it_blocks() -> None:
    html = f'<img src="{TRACKER}"><img src="HTTP://t.example/x.png"><img src="{PIXEL}"><img src="cid:part1">'
    blocked = sanitise(html, images=False)
    assert blocked.blocked_images == 2 and "tracker" not in blocked.html and PIXEL in blocked.html
    shown = sanitise(html, images=True)
    assert shown.blocked_images == 0 and TRACKER in shown.html and "cid:" not in shown.html
