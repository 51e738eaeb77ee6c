"""The mailed transcript link in a real browser (headless chromium): the page decrypts the conversation with
the key after `#`, shows a customer's markup as text, and says so when the key is missing or wrong."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from web_browser import ServedDesk, browser, serve_in_thread  # noqa: F401  (the fixture)
from core.db import Database
from core.desk import Actor, Helpdesk
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import Ticket
from core.settings import Settings
from mailgate.deliver import deliver
from mailgate.outbox_sender import OutboxSender
from testkit import Sink, make_mail, text_of

JANE = "jane@corp.test"
ALICE = "alice@customer.test"
PHRASE = "violet-quokka-7719 ledger"
ANSWER = "The amber-pelican-5521 line is fixed."
HOSTILE = '<script>alert("script")</script> <img src=x onerror="alert(\'img\')">'
pytestmark = pytest.mark.sqlite_only


@dataclass(frozen=True)
class Mailed:
    """The served desk and the transcript link Alice was mailed, pointing at it."""

    served: ServedDesk
    link: str


@pytest.fixture
def served(settings: Settings, database: Database) -> Iterator[ServedDesk]:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
    running = serve_in_thread(Helpdesk(settings, database))
    yield running
    running.stop()


@pytest.fixture
def mailed(served: ServedDesk, settings: Settings, database: Database, sink: Sink) -> Mailed:
    return Mailed(served, mail_a_transcript(served, settings, database, sink))


def mail_a_transcript(served: ServedDesk, settings: Settings, database: Database, sink: Sink,
                      templates: str = "") -> str:
    """Alice writes, Jane answers and closes in a group that keeps transcripts: the link mailed to Alice.

    `templates`: a folder of the installation's own templates (`[templates] folder`).
    """
    # links in mail point at the desk just started: its port is known only now
    desk = Helpdesk(replace(settings, web=replace(settings.web, base_url=served.url),
                            templates=replace(settings.templates, folder=templates)), database)
    desk.add_worker(JANE, "Jane Doe", ["Support"])
    desk.edit_group("Support", transcripts=True)
    mail = make_mail(sender=f"Alice <{ALICE}>", subject="Ledger <b>question</b>",
                     body=f"Please check the {PHRASE}.\n{HOSTILE}")
    deliver(database, settings, mail.as_bytes(), Envelope("smtp", ALICE, (settings.helpdesk.default_address,)))
    with database.read() as session:
        mask = session.scalars(select(Ticket.mask)).one()
    desk.reply(mask, ANSWER, (), Actor(JANE))
    desk.close([mask], Actor(JANE))
    OutboxSender(database, settings.relay, settings.smtp.hostname).send_due()
    (link,) = [found for m in sink.to(ALICE) for found in re.findall(r"http://\S+/transcripts/\S+", text_of(m))]
    return link


def no_alert_and_no_script_error(driver: Any, *, blocked: bool = False) -> None:
    """No alert came up and the console holds no error; `blocked`: but for the policy's own reports that it
    blocked something (markup the page was given: the Content-Security-Policy is its second wall)."""
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018  (reading it is the check)
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
              and not (blocked and entry["source"] == "security" and "has been blocked" in entry["message"])]
    assert errors == [], "\n".join(e["message"] for e in errors)


def refusal(driver: Any) -> str:
    """The page's message once it gave up: the status line turned into an alert."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status = driver.find_element(By.ID, "transcript-status")
    WebDriverWait(driver, 10).until(lambda _: status.get_attribute("role") == "alert")
    return str(status.text)


def test_the_mailed_link_shows_the_conversation_and_runs_nothing_of_it(mailed: Mailed, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    assert mailed.link.startswith(f"{mailed.served.url}/transcripts/") and "#" in mailed.link
    browser.get(mailed.link)
    view = browser.find_element(By.ID, "transcript-view")
    shown = view.text
    assert PHRASE in shown and ANSWER in shown and "Jane Doe" in shown
    assert 'alert("script")' in shown and "onerror" in shown, "the customer's markup, as text"
    assert view.find_elements(By.CSS_SELECTOR, "script, img, a, iframe, [style], [onerror]") == []
    assert [h.text for h in view.find_elements(By.TAG_NAME, "h1")] == ["Ledger <b>question</b>"]
    assert len(view.find_elements(By.CSS_SELECTOR, "section.entry")) == 2
    assert browser.title.startswith("[") and "Ledger" in browser.title
    assert browser.find_elements(By.ID, "transcript-status") == []
    no_alert_and_no_script_error(browser)


def test_a_wrong_or_missing_key_is_said_plainly(mailed: Mailed, browser: Any) -> None:
    page, key = mailed.link.split("#")
    other = ("A" if key[0] != "A" else "B") + key[1:]
    for link, said in ((f"{page}#{other}", "The key does not open this transcript"),
                       (f"{page}#{key[:20]}", "The key does not open this transcript"),
                       (f"{page}#%zz!", "The key does not open this transcript"),
                       (page, "This link has no key"),
                       (f"{page}#", "This link has no key")):
        browser.get("about:blank")  # a new document each time: only the fragment would change otherwise
        browser.get(link)
        assert refusal(browser).startswith(said), link
        assert "quokka" not in browser.page_source
    no_alert_and_no_script_error(browser)


def test_markup_in_a_decrypted_transcript_runs_nothing_and_loads_nothing(
        served: ServedDesk, settings: Settings, database: Database, sink: Sink, browser: Any, tmp_path: Path) -> None:
    """An installation's own transcript template that writes markup: the page rebuilds what it knows, as text."""
    from selenium.webdriver.common.by import By

    (tmp_path / "transcript.html.j2").write_text(
        '<html><head><title>t</title><script>alert("head")</script></head><body><article class="transcript">'
        '<h1 style="color:red" onclick="alert(1)">{{ transcript.subject }}</h1>'
        '<img src="x" onerror="alert(2)"><script>alert(3)</script><iframe src="javascript:alert(4)"></iframe>'
        '<p><a href="javascript:alert(5)">link</a> {{ transcript.entries[0].text }}</p></article></body></html>')
    browser.get(mail_a_transcript(served, settings, database, sink, str(tmp_path)))
    view = browser.find_element(By.ID, "transcript-view")
    assert PHRASE in view.text and "link" in view.text
    assert view.find_elements(By.CSS_SELECTOR, "script, img, a, iframe, [style], [onclick], [onerror]") == []
    assert [h.get_attribute("outerHTML") for h in view.find_elements(By.TAG_NAME, "h1")] == [
        "<h1>Ledger &lt;b&gt;question&lt;/b&gt;</h1>"]
    no_alert_and_no_script_error(browser, blocked=True)  # the parser met onclick, onerror and style: refused
