"""The web desk in a real browser (headless chromium through selenium): a worker signs in, finds, opens,
answers and closes tickets with the keyboard and the mouse, and a hostile mail runs nothing (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default
from typing import Any

import pytest
from sqlalchemy import select

from web_browser import ServedDesk, browser, serve_in_thread  # noqa: F401  (the fixture)
from core.db import Database
from core.desk import Actor, Helpdesk
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import Priority, Status, Ticket
from core.settings import Settings
from mailgate.deliver import deliver
from mailgate.outbox_sender import OutboxSender
from testkit import Sink, make_mail, text_of

JANE = "jane@corp.test"
PASSWORD = "correct horse battery"
HOSTILE = ('<script>alert("script")</script> <img src=x onerror="alert(\'img\')"> '
           '<a href="javascript:alert(\'link\')">click</a>')
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def served(settings: Settings, database: Database) -> Iterator[tuple[ServedDesk, Helpdesk]]:
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
    desk = Helpdesk(settings, database)
    desk.add_worker(JANE, "Jane Doe", ["Support"])
    desk.set_password(JANE, PASSWORD)
    for number, body in enumerate(("The printer is on fire.", HOSTILE, "Invoice 1003 is wrong.")):
        mail = make_mail(sender=f"Alice <alice{number}@customer.test>", subject=f"Case {number}", body=body)
        deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))
    running = serve_in_thread(desk)
    yield running, desk
    running.stop()


def masks(database: Database) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(Ticket.mask).order_by(Ticket.id)))


def sign_in(driver: Any, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/")
    assert "/sign-in" in driver.current_url
    driver.find_element(By.ID, "email").send_keys(JANE)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    assert driver.find_element(By.ID, "tickets")


def no_alert_and_no_script_error(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018  (reading it is the check)
    errors = [entry for entry in driver.get_log("browser")  # a 409 or 404 answer is no script error
              if entry["level"] == "SEVERE" and entry.get("source") != "network"]
    assert errors == []


def test_a_worker_signs_in_opens_a_ticket_by_keyboard_and_answers_the_customer(
        served: tuple[ServedDesk, Helpdesk], browser: Any, database: Database, settings: Settings,
        sink: Sink) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    running, _ = served
    sign_in(browser, running.url)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.ticket")
    assert {row.get_attribute("data-mask") for row in rows} == set(masks(database))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("j")
    body = browser.find_element(By.TAG_NAME, "body")
    first = browser.find_element(By.CSS_SELECTOR, "tr.ticket.current").get_attribute("data-mask")
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert browser.current_url.endswith(f"/tickets/{first}")
    browser.find_element(By.TAG_NAME, "body").send_keys("r")
    assert browser.switch_to.active_element.get_attribute("id") == "reply-text"
    browser.switch_to.active_element.send_keys("Unplug it, then plug it in again.")
    browser.find_element(By.ID, "reply").click()
    assert "reply filed" in browser.find_element(By.CSS_SELECTOR, ".said").text
    no_alert_and_no_script_error(browser)
    OutboxSender(database, settings.relay, settings.smtp.hostname).send_due()
    relayed = [message_from_bytes(raw, policy=default) for _, _, raw in sink.received]
    (answer,) = [mail for mail in relayed if "Unplug it" in text_of(mail)]
    assert answer["To"].addresses[0].addr_spec.startswith("alice") and JANE not in answer.as_string()


def test_a_hostile_mail_is_shown_as_text_and_runs_nothing(served: tuple[ServedDesk, Helpdesk], browser: Any,
                                                         database: Database) -> None:
    from selenium.webdriver.common.by import By

    running, _ = served
    sign_in(browser, running.url)
    browser.get(f"{running.url}/tickets/{masks(database)[1]}")
    shown = browser.find_element(By.CSS_SELECTOR, "article.message pre.text").text
    assert 'alert("script")' in shown and "onerror" in shown  # as text, for the worker to read
    assert browser.find_elements(By.CSS_SELECTOR, "article.message img, article.message a[href^='javascript']") == []
    no_alert_and_no_script_error(browser)


def test_bulk_close_and_the_collision_prompt(served: tuple[ServedDesk, Helpdesk], browser: Any,
                                             database: Database) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    running, desk = served
    sign_in(browser, running.url)
    first, second, third = masks(database)
    for mask in (first, second):
        browser.find_element(By.CSS_SELECTOR, f"input[name=mask][value='{mask}']").click()
    Select(browser.find_element(By.ID, "bulk-action")).select_by_value("close")
    browser.find_element(By.ID, "bulk-apply").click()
    said = [element.text for element in browser.find_elements(By.CSS_SELECTOR, ".said")]
    assert sorted(said) == sorted([f"{first}: closed", f"{second}: closed"])
    browser.get(f"{running.url}/tickets/{third}")
    desk.set_priority([third], Priority.URGENT, Actor("jane@corp.test"))  # someone else, meanwhile
    browser.find_element(By.ID, "close").click()
    assert "changed since you opened it" in browser.find_element(By.ID, "notice").text
    with database.read() as session:
        assert session.scalars(select(Ticket.status).where(Ticket.mask == third)).one() is Status.OPEN
    browser.find_element(By.ID, "close").click()  # the page is current now: it applies
    assert "closed" in browser.find_element(By.CSS_SELECTOR, ".said").text
    no_alert_and_no_script_error(browser)


def test_a_hostile_html_mail_is_framed_sanitised_in_a_sandbox_and_runs_nothing(
        served: tuple[ServedDesk, Helpdesk], browser: Any, database: Database, settings: Settings) -> None:
    from selenium.webdriver.common.by import By

    running, _ = served
    mail = make_mail(sender="Mallory <mallory@customer.test>", subject="Formatted", body="plain part")
    mail.add_alternative(f'<p>Hello <b>team</b></p>{HOSTILE}<img src="https://tracker.example/p.gif">',
                         subtype="html")
    deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))
    sign_in(browser, running.url)
    browser.get(f"{running.url}/tickets/{masks(database)[-1]}")
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe.mail-html"))
    assert browser.find_element(By.CSS_SELECTOR, "p b").text == "team"  # the mail, as formatted
    assert "1 remote image blocked" in browser.find_element(By.TAG_NAME, "body").text
    assert [img.get_attribute("src") or "" for img in browser.find_elements(By.TAG_NAME, "img")] == ["", ""]
    assert browser.find_elements(By.CSS_SELECTOR, "script, [onerror], a[href^='javascript']") == []
    browser.switch_to.default_content()
    browser.find_element(By.LINK_TEXT, "Show remote images").click()  # the worker asks: loaded in the frame
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe.mail-html"))
    assert browser.find_element(By.CSS_SELECTOR, "img[src^='https://tracker.example/']")
    browser.switch_to.default_content()
    no_alert_and_no_script_error(browser)


def test_the_desk_fits_a_phone_360_px_wide(served: tuple[ServedDesk, Helpdesk], browser: Any,
                                           database: Database) -> None:
    running, _ = served
    browser.set_window_size(360, 800)
    sign_in(browser, running.url)
    for path in ("/", f"/tickets/{masks(database)[0]}", "/new"):
        browser.get(f"{running.url}{path}")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{path} is {overflow} px wider than the screen"


FOCUSABLE_ROLES = {"button", "link", "textbox", "searchbox", "combobox", "checkbox", "radio", "menuitem",
                   "ListBox", "listbox", "spinbutton", "switch", "tab"}


def accessibility_tree(driver: Any) -> list[dict[str, Any]]:
    """Chromium's own accessibility tree of the page: what a screen reader is given to announce."""
    nodes = driver.execute_cdp_cmd("Accessibility.getFullAXTree", {})["nodes"]
    return [node for node in nodes if not node.get("ignored")]


def test_a_screen_reader_gets_names_landmarks_headings_and_a_sane_focus_order(
        served: tuple[ServedDesk, Helpdesk], browser: Any, database: Database) -> None:
    """Read from chromium's accessibility tree, as a screen reader does, not from the HTML source."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    running, _ = served
    sign_in(browser, running.url)
    for path in ("/", f"/tickets/{masks(database)[0]}", "/new"):
        browser.get(f"{running.url}{path}")
        nodes = accessibility_tree(browser)
        roles = [node["role"]["value"] for node in nodes]
        assert {"main", "navigation", "banner", "search"} <= set(roles), f"{path}: landmarks {set(roles)}"
        unnamed = [(node["role"]["value"], node.get("backendDOMNodeId")) for node in nodes
                   if node["role"]["value"] in FOCUSABLE_ROLES and not node.get("name", {}).get("value", "").strip()]
        assert unnamed == [], f"{path}: controls a screen reader announces without a name: {unnamed}"
        levels = [next(int(p["value"]["value"]) for p in node["properties"] if p["name"] == "level")
                  for node in nodes if node["role"]["value"] == "heading"]
        assert levels.count(1) == 1 and levels[0] == 1, f"{path}: headings {levels}"
        assert all(later - earlier <= 1 for earlier, later in zip(levels, levels[1:])), f"{path}: skips {levels}"
        # Tab from the top: the skip link first, then the controls in the order they are read.
        browser.get(f"{running.url}{path}")
        browser.execute_script("window.reached = [];"
                               "document.addEventListener('focusin', e => window.reached.push(e.target))")
        ActionChains(browser).send_keys(Keys.TAB * 12).perform()
        reached = browser.execute_script("return window.reached")
        assert reached[0].get_attribute("class") == "skip", f"{path}: Tab reaches {reached[0].tag_name} first"
        in_order = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href], button, input:not([type=hidden]), select,"
            " textarea, iframe, [tabindex]')).filter(e => e.tabIndex >= 0 && !e.disabled && e.offsetParent !== null)")
        assert reached == in_order[:len(reached)], f"{path}: Tab does not follow the page's reading order"
        browser.execute_script("arguments[0].focus()", reached[0])
        ActionChains(browser).send_keys(Keys.ENTER).perform()  # the skip link lands in the page's content
        assert browser.execute_script("return location.hash") == "#main"
    no_alert_and_no_script_error(browser)
