"""What a screen reader needs from every page of the desk, checked in the HTML itself: each field named by a
label (or aria-label), one h1, buttons and links that say what they do, the page's language, a skip link."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from starlette.testclient import TestClient

from core.db import Database
from core.desk import Helpdesk
from core.settings import Settings
from web.app import create_app
from web_kit import JANE, PASSWORD, desk_with_jane, printer_mails

pytestmark = pytest.mark.sqlite_only


class Page(HTMLParser):
    """The parts of a page a screen reader announces."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()
        self.h1 = 0
        self.lang = ""
        self.links: list[str] = []
        self.buttons: list[str] = []
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "html":
            self.lang = found.get("lang") or ""
        if tag == "h1":
            self.h1 += 1
        if tag == "label" and found.get("for"):
            self.labelled.add(str(found["for"]))
        if tag in ("input", "select", "textarea") and found.get("type") not in ("hidden", "submit"):
            self.fields.append({**found, "in_label": str(any(t == "label" for t, _ in self._open))})
        if tag in ("a", "button"):
            self._open.append((tag, []))
        elif tag == "label":
            self._open.append((tag, []))

    def handle_data(self, data: str) -> None:
        for _, text in self._open:
            text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1][0] == tag:
            opened, text = self._open.pop()
            words = " ".join("".join(text).split())
            (self.links if opened == "a" else self.buttons if opened == "button" else []).append(words)


def read(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


@pytest.fixture
def client(settings: Settings, database: Database) -> TestClient:
    desk: Helpdesk = desk_with_jane(settings, database, printer_mails())
    client = TestClient(create_app(desk), follow_redirects=False)
    form = client.get("/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    client.post("/sign-in", data={"email": JANE, "password": PASSWORD, "csrf": csrf[1]})
    return client


def test_every_page_names_its_fields_buttons_and_links_for_a_screen_reader(client: TestClient) -> None:
    mask = re.search(r'data-mask="([^"]+)"', client.get("/").text)
    assert mask is not None
    for path in ("/", f"/tickets/{mask[1]}", "/new", "/?status=closed"):
        html = client.get(path).text
        page = read(html)
        assert page.lang == "en" and page.h1 == 1, path
        assert 'href="#main"' in html and 'id="main"' in html, path  # the skip link and its target
        unnamed = [f for f in page.fields if f.get("id") not in page.labelled and not f.get("aria-label")
                   and f["in_label"] != "True"]
        assert unnamed == [], f"{path}: fields without a label: {unnamed}"
        assert all(text for text in page.buttons), f"{path}: a button says nothing"
        assert all(text for text in page.links), f"{path}: a link says nothing"
    sign_in = read(TestClient(client.app).get("/sign-in").text)
    assert sign_in.h1 == 1 and all(f.get("id") in sign_in.labelled for f in sign_in.fields)
