"""The customers' portal in a real browser (headless chromium through selenium): a customer signs in with the
link the smarthost received, lists, opens a request with a file, answers, downloads and closes (issue 15)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from web_browser import ServedDesk, browser, serve_in_thread  # noqa: F401  (the fixture)
from core.db import Database
from core.desk import Actor, Helpdesk
from core.settings import Settings
from mailgate.outbox_sender import OutboxSender
from testkit import Sink, make_mail, text_of
from web.portal import PORTAL_COOKIE
from web_kit import JANE, desk_with_jane

ALICE = "alice@customer.test"
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def served(settings: Settings, database: Database) -> Iterator[tuple[ServedDesk, Helpdesk]]:
    mail = make_mail(sender=f"Alice <{ALICE}>", subject="Printer on fire", body="The printer is on fire.")
    desk = desk_with_jane(settings, database, [mail.as_bytes()])
    running = serve_in_thread(desk)
    yield running, desk
    running.stop()


@pytest.fixture
def customer(served: tuple[ServedDesk, Helpdesk], browser: Any, database: Database, settings: Settings,
             sink: Sink) -> tuple[str, Helpdesk]:
    """Alice, signed in to the portal in the browser by the link she was mailed: where it is served, and the desk."""
    running, desk = served
    sign_in(browser, database, settings, sink, running.url)
    return running.url, desk


def listed(driver: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [row.get_attribute("data-mask") for row in driver.find_elements(By.CSS_SELECTOR, "tr.ticket")]


def no_alert_and_no_script_error(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018  (reading it is the check)
    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
              and entry.get("source") != "network"]  # a 404 the test asked for is no script error
    assert severe == []


def shows(driver: Any, element_id: str, words: str) -> None:
    """Waits until the page (a new one, after a click) shows these words in that element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(expected_conditions.text_to_be_present_in_element((By.ID, element_id), words))


def arrives(driver: Any, url: str) -> None:
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10).until(expected_conditions.url_to_be(url))


def link_from_smarthost(database: Database, settings: Settings, sink: Sink, served_at: str) -> str:
    """Sends the outbox to the test smarthost and reads the portal link in the mail it got for Alice."""
    OutboxSender(database, settings.relay, settings.smtp.hostname).send_due()
    (mail,) = [m for m in sink.to(ALICE) if "/portal/sign-in/" in text_of(m)]
    found = re.search(r"https?://[^/\s]+(/portal/sign-in/[\w-]+)", text_of(mail))
    assert found is not None
    return served_at + found[1]  # the desk serves on a port of the test's own, not base_url's


def sign_in(driver: Any, database: Database, settings: Settings, sink: Sink, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/portal")
    assert driver.current_url == f"{url}/portal/sign-in"
    driver.find_element(By.ID, "email").send_keys(ALICE)
    driver.find_element(By.ID, "mail-link").click()
    shows(driver, "link-sent", "a link is on its way")
    driver.get(link_from_smarthost(database, settings, sink, url))
    driver.find_element(By.ID, "use-link").click()
    arrives(driver, f"{url}/portal")


def test_a_customer_signs_in_by_mail_opens_a_request_with_a_file_answers_downloads_and_closes(
        customer: tuple[str, Helpdesk], browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, _ = customer
    (row,) = browser.find_elements(By.CSS_SELECTOR, "tr.ticket")
    assert "Printer on fire" in row.text and "Open" in row.text
    printer = row.get_attribute("data-mask")
    browser.find_element(By.ID, "new-request").click()
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"toner levels: low\n")
    browser.find_element(By.ID, "subject").send_keys("Toner runs out")
    browser.find_element(By.ID, "text").send_keys("The toner runs out every week.")
    assert Select(browser.find_element(By.ID, "priority")).first_selected_option.text == "normal"
    Select(browser.find_element(By.ID, "priority")).select_by_visible_text("high")
    browser.find_element(By.ID, "files").send_keys(str(notes))
    browser.find_element(By.ID, "open").click()
    shows(browser, "done", "Your request is filed")
    assert browser.find_element(By.ID, "priority").text == "high"
    assert "Toner runs out" in browser.find_element(By.TAG_NAME, "h1").text
    mask = re.search(r"/portal/tickets/([^?/]+)", browser.current_url)
    assert mask is not None

    browser.find_element(By.ID, "reply-text").send_keys("It ran out again today.")
    browser.find_element(By.ID, "reply").click()
    shows(browser, "done", "Your answer is filed")
    said = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "article.message pre.text")]
    assert said == ["The toner runs out every week.", "It ran out again today."]

    href = browser.find_element(By.LINK_TEXT, "notes.txt").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    download = httpx.get(href, cookies={PORTAL_COOKIE: cookies[PORTAL_COOKIE]})
    assert download.status_code == 200 and download.content == b"toner levels: low\n"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert httpx.get(href).status_code == 303  # the link alone, without her session, gives nothing

    browser.find_element(By.ID, "close").click()
    shows(browser, "done", "The request is closed.")
    assert browser.find_element(By.ID, "status").text == "Closed" and not browser.find_elements(By.ID, "close")
    browser.find_element(By.LINK_TEXT, "Requests").click()
    arrives(browser, f"{url}/portal")
    assert listed(browser) == [printer]
    no_alert_and_no_script_error(browser)


def test_the_badge_shows_what_waits_for_the_customer_and_the_filters_work_without_script(
        customer: tuple[str, Helpdesk], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    url, desk = customer
    assert browser.find_elements(By.ID, "badge") == []
    (mask,) = listed(browser)
    desk.reply(mask, "Which model is it?", [], Actor(JANE))  # a worker's answer: now it waits for her
    browser.refresh()
    assert browser.find_element(By.ID, "badge").text == "1"
    assert "Waiting for you" in browser.find_element(By.CSS_SELECTOR, "tr.ticket .status").text
    browser.find_element(By.ID, "waiting").click()
    arrives(browser, f"{url}/portal?status=waiting_user")
    assert listed(browser) == [mask]
    browser.find_element(By.ID, "q").send_keys("no such words")
    browser.find_element(By.ID, "show").click()
    shows(browser, "none", "No requests match")
    browser.get(f"{url}/portal?from=2031-02-30")
    assert "is no date" in browser.find_element(By.ID, "error").text
    no_alert_and_no_script_error(browser)


def test_a_screen_reader_finds_the_landmarks_one_heading_and_a_name_for_every_control(
        customer: tuple[str, Helpdesk], browser: Any) -> None:
    """Read from chromium's accessibility tree, as a screen reader is given it, not from the HTML source."""
    url, _ = customer
    (mask,) = listed(browser)
    controls = {"button", "link", "textbox", "searchbox", "combobox", "checkbox"}
    for path in ("/portal", "/portal/new", f"/portal/tickets/{mask}"):
        browser.get(f"{url}{path}")
        shown = [n for n in browser.execute_cdp_cmd("Accessibility.getFullAXTree", {})["nodes"] if not n.get("ignored")]
        roles = [n["role"]["value"] for n in shown]
        assert {"banner", "navigation", "main"} <= set(roles), f"{path}: {set(roles)}"
        levels = [p["value"]["value"] for n in shown if n["role"]["value"] == "heading"
                  for p in n.get("properties", []) if p["name"] == "level"]
        assert levels.count(1) == 1 and levels[0] == 1, f"{path}: headings {levels}"
        nameless = [n["role"]["value"] for n in shown
                    if n["role"]["value"] in controls and not n.get("name", {}).get("value", "").strip()]
        assert nameless == [], f"{path}: controls without a name: {nameless}"
    no_alert_and_no_script_error(browser)


def test_signing_out_ends_the_session_and_a_used_link_gives_nothing(
        customer: tuple[str, Helpdesk], browser: Any, database: Database, settings: Settings, sink: Sink) -> None:
    from selenium.webdriver.common.by import By

    url, _ = customer
    used = link_from_smarthost(database, settings, sink, url)
    browser.find_element(By.ID, "sign-out").click()
    arrives(browser, f"{url}/portal/sign-in")
    browser.get(used)
    browser.find_element(By.ID, "use-link").click()
    shows(browser, "error", "used already or expired")
    browser.get(f"{url}/portal")
    assert browser.current_url == f"{url}/portal/sign-in"
    no_alert_and_no_script_error(browser)
