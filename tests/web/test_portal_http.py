"""The customers' portal over HTTP (Starlette's test client on the real app and a real database): sign-in by
mailed link, what a stranger, a forged form or another customer gets, the list, a ticket, its actions (issue 15)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from core.db import Database
from core.desk import Actor, Helpdesk, NewTicket
from core.inbound import Envelope
from core.mail_purpose import MailPurpose
from core.models import Attachment, AuditEntry, CustomerSession, Message, OutboxItem, Priority, Status, Ticket
from core.settings import Settings
from mailgate.deliver import deliver
from testkit import Clock, make_mail, text_of
from web.app import SESSION_COOKIE, create_app
from web.portal import PORTAL_COOKIE
from web_kit import JANE, PASSWORD, UNKNOWN_MASK, desk_with_jane

pytestmark = pytest.mark.sqlite_only  # the portal adds no SQL of its own: core's tests cover both databases

ALICE, BOB = "alice@customer.test", "bob@other.test"
HOSTILE = '<script>alert("mail")</script><img src=x onerror="alert(1)">'


@pytest.fixture
def desk(settings: Settings, database: Database, clock: Clock) -> Helpdesk:
    """Jane on the desk; Alice's ticket (a hostile line in it) and Bob's, each with a file attached."""
    desk_with_jane(settings, database)
    for sender, subject, body, name in ((f"Alice <{ALICE}>", "Printer on fire", f"The printer is on fire. {HOSTILE}",
                                         "alice.txt"),
                                        (f"Bob <{BOB}>", "Invoice wrong", "Invoice 1003 is wrong.", "invoice.pdf")):
        mail = make_mail(sender=sender, subject=subject, body=body,
                         attachments=[(name, "application/octet-stream", f"file of {sender}".encode())])
        deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))
    return Helpdesk(settings, database, clock=clock)


def portal(desk: Helpdesk, base_url: str = "http://127.0.0.1:8025") -> TestClient:
    return TestClient(create_app(desk), base_url=base_url, follow_redirects=False)


@pytest.fixture
def client(desk: Helpdesk) -> Iterator[TestClient]:
    with portal(desk) as client:
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found[1]


def ask(client: TestClient, email: str) -> tuple[int, str]:
    """Asks for a sign-in link as the form does; the answer's status and page."""
    form = client.get("/portal/sign-in")
    answer = client.post("/portal/sign-in", data={"email": email, "csrf": csrf_of(form.text)})
    return answer.status_code, answer.text


def mailed_links(database: Database, to: str) -> list[str]:
    """The paths of the portal links mailed to this address, oldest first."""
    with database.read() as session:
        items = session.scalars(select(OutboxItem).where(OutboxItem.purpose == MailPurpose.SIGN_IN_LINK)
                                .order_by(OutboxItem.id)).all()
        raws = [item.raw for item in items if to in item.rcpt_tos]
    texts = [text_of(message_from_bytes(raw, policy=default)) for raw in raws]
    return [found[1] for found in (re.search(r"https?://[^/\s]+(/portal/sign-in/[\w-]+)", t) for t in texts) if found]


def use(client: TestClient, path: str) -> int:
    """Opens the link's page and presses its button; the status of the press."""
    page = client.get(path)
    assert page.status_code == 200
    return client.post(path, data={"csrf": csrf_of(page.text)}).status_code


def sign_in(client: TestClient, database: Database, email: str = ALICE) -> str:
    """Signs the customer in by a mailed link; the session's CSRF token, as the list page carries it."""
    assert ask(client, email)[0] == 200
    assert use(client, mailed_links(database, email)[-1]) == 303
    return csrf_of(client.get("/portal").text)


def mask_of(database: Database, subject: str) -> str:
    with database.read() as session:
        return session.scalars(select(Ticket.mask).where(Ticket.subject == subject)).one()


def attachment_of(database: Database, mask: str) -> int:
    with database.read() as session:
        return session.scalars(select(Attachment.id).join(Message, Message.id == Attachment.message_id)
                               .join(Ticket, Ticket.id == Message.ticket_id).where(Ticket.mask == mask)).first() or 0


def counts(database: Database) -> tuple[int, int, list[Status], int]:
    """Tickets, messages, the statuses and live customer sessions: what a refused request must leave alone."""
    with database.read() as session:
        return (session.scalar(select(func.count(Ticket.id))) or 0, session.scalar(select(func.count(Message.id))) or 0,
                list(session.scalars(select(Ticket.status).order_by(Ticket.id))),
                session.scalar(select(func.count(CustomerSession.id)).where(CustomerSession.ended_at.is_(None))) or 0)


def audited(database: Database, actor: str) -> list[str]:
    with database.read() as session:
        return list(session.scalars(select(AuditEntry.action).where(AuditEntry.actor == actor).order_by(AuditEntry.id)))


def test_the_form_answers_alike_for_any_address_and_mails_only_a_customer(client: TestClient,
                                                                          database: Database) -> None:
    answers = {email: ask(client, email) for email in (ALICE, "nobody@nowhere.test", JANE)}
    assert len(set(answers.values())) == 1 and answers[ALICE][0] == 200
    assert "a link is on its way" in answers[ALICE][1]
    with database.read() as session:
        mailed = session.scalars(select(OutboxItem.rcpt_tos).where(OutboxItem.purpose == MailPurpose.SIGN_IN_LINK))
        assert list(mailed) == [[ALICE]]  # not to a stranger, not to a worker


def test_a_link_signs_in_once_and_only_within_fifteen_minutes(client: TestClient, database: Database,
                                                               clock: Clock) -> None:
    ask(client, ALICE)
    (path,) = mailed_links(database, ALICE)
    assert client.get(path).status_code == 200 and PORTAL_COOKIE not in client.cookies  # a fetch uses nothing
    page = client.get(path)
    signed = client.post(path, data={"csrf": csrf_of(page.text)})
    assert signed.status_code == 303 and signed.headers["location"] == "/portal"
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(f"{PORTAL_COOKIE}="))
    assert {"HttpOnly", "Path=/portal", "SameSite=lax"} <= {part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie  # the desk's base_url is http here
    assert client.get("/portal").status_code == 200
    client.cookies.clear()
    again = use(client, path)
    assert again == 401 and PORTAL_COOKIE not in client.cookies
    ask(client, ALICE)
    late = mailed_links(database, ALICE)[-1]
    clock.now += timedelta(minutes=16)
    page = client.get(late)
    refused = client.post(late, data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 401 and "used already or expired" in refused.text
    assert PORTAL_COOKIE not in client.cookies and client.get("/portal").status_code == 303
    assert counts(database)[3] == 1  # the first sign-in's session alone
    assert audited(database, "portal sign-in").count("portal_link_refused") == 2


def test_a_link_pressed_without_its_page_token_is_refused_and_not_used_up(client: TestClient,
                                                                          database: Database) -> None:
    ask(client, ALICE)
    (path,) = mailed_links(database, ALICE)
    client.get(path)
    for token in ("", "forged"):
        assert client.post(path, data={"csrf": token}).status_code == 403
    assert counts(database)[3] == 0 and PORTAL_COOKIE not in client.cookies
    assert use(client, path) == 303  # still good for the customer's own click


def test_the_sign_in_form_needs_its_token_and_sets_secure_cookies_over_https(
        settings: Settings, database: Database, desk: Helpdesk, clock: Clock) -> None:
    with portal(desk) as client:
        client.get("/portal/sign-in")
        refused = client.post("/portal/sign-in", data={"email": ALICE, "csrf": "forged"})
        assert refused.status_code == 403 and "out of date" in refused.text
    assert mailed_links(database, ALICE) == []
    https = Helpdesk(replace(settings, web=replace(settings.web, base_url="https://help.example.com")), database,
                     clock=clock)
    with portal(https, "https://help.example.com") as client:  # a Secure cookie comes back over https alone
        ask(client, ALICE)
        page = client.get(mailed_links(database, ALICE)[-1])
        signed = client.post(mailed_links(database, ALICE)[-1], data={"csrf": csrf_of(page.text)})
    cookie = next(c for c in signed.headers.get_list("set-cookie") if c.startswith(f"{PORTAL_COOKIE}="))
    assert "Secure" in {part.strip() for part in cookie.split(";")}


def test_requests_for_links_are_throttled_per_client(client: TestClient, database: Database) -> None:
    answers = [ask(client, f"someone{n}@nowhere.test")[0] for n in range(20)]
    assert answers == [200] * 20
    form = client.get("/portal/sign-in")
    throttled = client.post("/portal/sign-in", data={"email": ALICE, "csrf": csrf_of(form.text)})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert "try again in" in throttled.text and mailed_links(database, ALICE) == []


def test_without_a_live_session_every_portal_path_answers_the_same_redirect(client: TestClient,
                                                                             database: Database) -> None:
    real = mask_of(database, "Printer on fire")
    paths = ["/portal", "/portal/new", f"/portal/tickets/{real}", f"/portal/tickets/{UNKNOWN_MASK}",
             f"/portal/tickets/{real}/attachments/{attachment_of(database, real)}", "/portal/no/such/page"]
    for cookie in ("", "forged-token", "x" * 43):
        answers = [client.get(path, headers={"cookie": f"{PORTAL_COOKIE}={cookie}"} if cookie else {})
                   for path in paths]
        assert {(a.status_code, a.headers["location"], a.text) for a in answers} == {(303, "/portal/sign-in", "")}
    before = counts(database)
    closing = client.post(f"/portal/tickets/{real}/close", data={"csrf": "anything"})
    assert closing.status_code == 303 and closing.headers["location"] == "/portal/sign-in"
    assert counts(database) == before
    page = client.get("/portal/sign-in")
    assert "script-src 'self'" in page.headers["content-security-policy"] and "<script" not in page.text


def test_a_tampered_cookie_is_refused(client: TestClient, database: Database) -> None:
    sign_in(client, database)
    token = client.cookies[PORTAL_COOKIE]
    assert client.get("/portal").status_code == 200
    client.cookies.clear()
    for forged in (token[:-1] + ("A" if token[-1] != "A" else "B"), token + "x", token.upper()):
        answer = client.get("/portal", headers={"cookie": f"{PORTAL_COOKIE}={forged}"})
        assert answer.status_code == 303 and answer.headers["location"] == "/portal/sign-in"


def test_a_forged_form_gets_403_and_changes_nothing(client: TestClient, database: Database) -> None:
    csrf = sign_in(client, database)
    mask = mask_of(database, "Printer on fire")
    before = counts(database)
    for token in ("", "forged", csrf[:-1]):
        for path, data in ((f"/portal/tickets/{mask}/close", {}), (f"/portal/tickets/{mask}/reply", {"text": "Hi"}),
                           ("/portal/new", {"subject": "Forged", "text": "Forged", "priority": "urgent"}),
                           ("/portal/sign-out", {})):
            refused = client.post(path, data={**data, "csrf": token} if token else data)
            assert refused.status_code == 403 and "nothing was changed" in refused.text, path
    assert counts(database) == before
    assert client.get("/portal").status_code == 200  # sign-out was forged too: still signed in


def test_another_customers_ticket_and_files_answer_as_a_mask_that_does_not_exist(
        client: TestClient, database: Database) -> None:
    csrf = sign_in(client, database)
    alices, bobs = mask_of(database, "Printer on fire"), mask_of(database, "Invoice wrong")
    theirs = attachment_of(database, bobs)
    unknown = client.get(f"/portal/tickets/{UNKNOWN_MASK}")
    assert unknown.status_code == 404
    assert client.get(f"/portal/tickets/{bobs}/history").status_code == 404  # no page, whoever's the mask
    assert client.get("/portal/").headers["location"] == "/portal"
    for path in (f"/portal/tickets/{bobs}", f"/portal/tickets/{bobs.lower()}"):
        answer = client.get(path)
        assert (answer.status_code, answer.text) == (unknown.status_code, unknown.text)
        assert "Invoice" not in answer.text and bobs not in answer.text
    no_file = client.get(f"/portal/tickets/{UNKNOWN_MASK}/attachments/{theirs}")
    for path in (f"/portal/tickets/{bobs}/attachments/{theirs}", f"/portal/tickets/{alices}/attachments/{theirs}"):
        answer = client.get(path)
        assert (answer.status_code, answer.text) == (404, no_file.text)
    before = counts(database)
    refused = [client.post(f"/portal/tickets/{bobs}/{action}", data={"csrf": csrf, "text": "mine now"})
               for action in ("reply", "close")]
    assert {(r.status_code, r.text) for r in refused} == {(404, client.post(
        f"/portal/tickets/{UNKNOWN_MASK}/close", data={"csrf": csrf}).text)}
    assert counts(database) == before


def test_the_customers_own_file_downloads_and_a_mail_is_shown_as_text(client: TestClient,
                                                                      database: Database) -> None:
    sign_in(client, database)
    mask = mask_of(database, "Printer on fire")
    page = client.get(f"/portal/tickets/{mask}")
    assert page.status_code == 200 and "alice.txt" in page.text
    assert "&lt;script&gt;alert(" in page.text and "<script" not in page.text and "<img" not in page.text
    link = re.search(r'href="(/portal/tickets/[^"]+/attachments/\d+)"', page.text)
    assert link is not None
    download = client.get(link[1])
    assert download.status_code == 200 and download.content == f"file of Alice <{ALICE}>".encode()
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''alice.txt"


def test_the_customer_sees_no_worker_address_no_note_and_no_other_ticket(client: TestClient, desk: Helpdesk,
                                                                         database: Database) -> None:
    sign_in(client, database)
    mask = mask_of(database, "Printer on fire")
    desk.comment([mask], "Internal: this customer is on the cheap plan.", Actor(JANE))
    desk.reply(mask, f"Unplug it, then plug it in again.\n\n-- \nJane Doe <{JANE}>", [], Actor(JANE))
    hers = desk.open_ticket(NewTicket(to=(ALICE,), subject=f"Call {JANE} back", text="About your call.", notify=False),
                            Actor(JANE))
    pages = [client.get(path).text for path in ("/portal", "/portal?status=waiting_user", f"/portal/tickets/{mask}",
                                                 f"/portal/tickets/{hers}")]
    assert hers in pages[0] and "Call " in pages[0] and "Call " in pages[3]  # shown, the address blacked out
    said = " ".join(pages)
    assert "Unplug it" in pages[2] and "Jane Doe" in pages[2]  # a worker signs with a name
    assert JANE not in said and "cheap plan" not in said and "Invoice" not in said and BOB not in said
    assert "spam" not in said.lower()


def test_the_list_filters_by_status_date_and_words_and_counts_what_waits_for_the_customer(
        client: TestClient, desk: Helpdesk, database: Database, clock: Clock) -> None:
    clock.now = datetime(2031, 3, 1, 20, tzinfo=timezone.utc)
    csrf = sign_in(client, database)
    printer = mask_of(database, "Printer on fire")
    toner = client.post("/portal/new", data={"csrf": csrf, "subject": "Toner", "text": "Where is toner sold?"})
    clock.now += timedelta(hours=6)  # the next day, within the session's idle time
    paper = client.post("/portal/new", data={"csrf": csrf, "subject": "Paper", "text": "The paper jams."})
    assert toner.status_code == paper.status_code == 303
    toner_mask, paper_mask = mask_of(database, "Toner"), mask_of(database, "Paper")

    def listed(query: str) -> set[str]:
        answer = client.get(f"/portal{query}")
        assert answer.status_code == 200, answer.text
        return set(re.findall(r'data-mask="([^"]+)"', answer.text))

    assert listed("") == {printer, toner_mask, paper_mask}
    assert listed("?from=2031-03-01&to=2031-03-01") == {toner_mask}
    assert listed("?from=2031-03-02") == {paper_mask}
    assert listed("?q=TONER+sold") == {toner_mask} and listed("?q=jams") == {paper_mask}
    assert listed("?q=nothing+like+this") == set()
    desk.close([toner_mask], Actor(JANE))
    desk.wait([paper_mask], clock.now + timedelta(days=3), Actor(JANE))
    assert listed("") == {printer, paper_mask}  # all but closed
    assert listed("?status=closed") == {toner_mask}
    assert listed("?status=waiting_user&status=closed") == {toner_mask, paper_mask}
    listing = client.get("/portal").text
    assert re.search(r'id="badge">1<', listing) and 'value="closed" checked' not in listing
    assert "Waiting for you" in listing and "Next page" not in listing and "Previous page" not in listing
    assert 'rel="prev"' in client.get("/portal?page=2").text  # an empty page two still leads back


@pytest.mark.parametrize("query, said", [("?from=2031-02-30", "“2031-02-30” is no date"),
                                          ("?to=yesterday", "“yesterday” is no date"),
                                          ("?from=2031-03-02&to=2031-03-01", "after the “to” date"),
                                          ("?q=" + "+".join(["word"] * 9), "at most 8 words")])
def test_a_bad_date_or_search_is_shown_with_the_form_and_400(client: TestClient, database: Database, query: str,
                                                            said: str) -> None:
    sign_in(client, database)
    answer = client.get(f"/portal{query}")
    assert answer.status_code == 400 and said in answer.text and 'id="from"' in answer.text
    assert 'data-mask="' not in answer.text


def test_a_customer_opens_answers_closes_and_downloads_and_each_is_audited_with_their_address(
        client: TestClient, database: Database) -> None:
    csrf = sign_in(client, database)
    refused = client.post("/portal/new", data={"csrf": csrf, "subject": " ", "text": "Keep what I typed"})
    assert refused.status_code == 400 and "subject is missing" in refused.text and "Keep what I typed" in refused.text
    opened = client.post("/portal/new", data={"csrf": csrf, "subject": "Scanner", "text": "The scanner is slow.",
                                              "priority": "high"},
                         files=[("attachments", ("scan.log", b"slow slow slow", "text/plain")),
                                ("attachments", ("more.log", b"slower", "text/plain"))])
    assert opened.status_code == 303 and opened.headers["location"].endswith("?done=opened")
    mask = mask_of(database, "Scanner")
    page = client.get(opened.headers["location"])
    assert "Your request is filed" in page.text and 'id="priority">high<' in page.text
    assert "scan.log" in page.text and "more.log" in page.text and 'id="close"' in page.text
    link = re.search(r'href="(/portal/tickets/[^"]+/attachments/\d+)"[^>]*>scan\.log<', page.text)
    assert link is not None and client.get(link[1]).content == b"slow slow slow"
    empty = client.post(f"/portal/tickets/{mask}/reply", data={"csrf": csrf, "text": "  "})
    assert empty.status_code == 400 and "write a message" in empty.text
    replied = client.post(f"/portal/tickets/{mask}/reply", data={"csrf": csrf, "text": "It got slower still."},
                          files=[("attachments", ("later.log", b"slowest", "text/plain"))])
    assert replied.status_code == 303
    page = client.get(replied.headers["location"]).text
    assert "It got slower still." in page and "later.log" in page
    closed = client.post(f"/portal/tickets/{mask}/close", data={"csrf": csrf})
    page = client.get(closed.headers["location"]).text
    assert "The request is closed." in page and 'id="status" class="status closed"' in page and 'id="close"' not in page
    again = client.post(f"/portal/tickets/{mask}/close", data={"csrf": csrf})
    assert again.headers["location"].endswith("done=closed-already")
    with database.read() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).one()
        assert (ticket.status, ticket.priority) == (Status.CLOSED, Priority.HIGH)
    assert client.post("/portal/sign-out", data={"csrf": csrf}).headers["location"] == "/portal/sign-in"
    assert client.get("/portal").status_code == 303
    assert {"portal_sign_in", "portal_opened", "priority", "portal_download", "portal_reply", "status"} <= set(
        audited(database, ALICE))


def test_an_upload_over_the_limit_gets_413_on_the_portal_and_changes_nothing(
        settings: Settings, database: Database, desk: Helpdesk, clock: Clock) -> None:
    small = Helpdesk(replace(settings, web=replace(settings.web, max_upload_bytes=20_000)), database, clock=clock)
    with portal(small) as client:
        csrf = sign_in(client, database)
        mask = mask_of(database, "Printer on fire")
        before = counts(database)
        big = ("big.bin", b"x" * 20_001, "application/octet-stream")
        for path, data in (("/portal/new", {"subject": "Big", "text": "see file"}),
                           (f"/portal/tickets/{mask}/reply", {"text": "see file"})):
            answer = client.post(path, data={**data, "csrf": csrf}, files={"attachments": big})
            assert answer.status_code == 413, path
        assert counts(database) == before


def test_a_customer_cookie_opens_neither_the_desk_nor_the_api_and_a_worker_cookie_not_the_portal(
        client: TestClient, database: Database) -> None:
    sign_in(client, database)
    customer = client.cookies[PORTAL_COOKIE]
    mask = mask_of(database, "Printer on fire")
    client.cookies.clear()
    for cookie in (f"{PORTAL_COOKIE}={customer}", f"{SESSION_COOKIE}={customer}"):
        for path in ("/", f"/tickets/{mask}", "/new"):
            answer = client.get(path, headers={"cookie": cookie})
            assert answer.status_code == 303 and answer.headers["location"].startswith("/sign-in?next="), path
        assert client.get("/api/v1/tickets", headers={"cookie": cookie}).status_code == 401
    assert client.get("/api/v1/tickets", headers={"authorization": f"Bearer {customer}"}).status_code == 401
    form = client.get("/sign-in")
    client.post("/sign-in", data={"email": JANE, "password": PASSWORD, "csrf": csrf_of(form.text), "next": "/"})
    worker = client.cookies[SESSION_COOKIE]
    assert client.get("/").status_code == 200  # her cookie does open the desk
    client.cookies.clear()
    for cookie in (f"{SESSION_COOKIE}={worker}", f"{PORTAL_COOKIE}={worker}"):
        for path in ("/portal", f"/portal/tickets/{mask}"):
            answer = client.get(path, headers={"cookie": cookie})
            assert (answer.status_code, answer.headers["location"]) == (303, "/portal/sign-in"), path


def test_every_portal_page_names_its_fields_and_has_one_heading(client: TestClient, database: Database) -> None:
    """What a screen reader needs, read from the HTML: a language, a skip link, one h1, a label for each field."""
    mask = mask_of(database, "Printer on fire")
    pages = [client.get("/portal/sign-in").text]
    sign_in(client, database)
    pages += [client.get(path).text for path in ("/portal", "/portal/new", f"/portal/tickets/{mask}",
                                                  f"/portal/tickets/{UNKNOWN_MASK}")]
    for html in pages:
        assert '<html lang="en">' in html and 'class="skip" href="#main"' in html and html.count("<h1") == 1
        fields = re.findall(r'<(?:input|select|textarea)\b(?![^>]*type="hidden")[^>]*>', html)
        labelled = set(re.findall(r'<label for="([^"]+)"', html))
        wrapped = set(re.findall(r'<label>(<input\b[^>]*>)', html))  # a checkbox inside its label
        unlabelled = [field for field in fields if field not in wrapped
                      and (re.search(r'id="([^"]+)"', field) or [None, None])[1] not in labelled]
        assert unlabelled == [], unlabelled
