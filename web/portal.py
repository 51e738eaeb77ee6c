"""The customers' portal at /portal: sign-in by mailed link, their own tickets, nothing of the desk.

A customer asks for a one-time link with their address (the page answers alike for any address)
and signs in with one click on the link's page, so a mail scanner's fetch uses nothing up. Their
session's cookie (`postdesk_portal`, path /portal) is read here only: the desk reads its own
cookie and the API bearer tokens, and a worker's cookie opens nothing here. Without a live session
every /portal path answers the same redirect to sign-in; every POST needs the session's CSRF token
(else 403, nothing changed). A ticket the customer may not see answers with the very page of a mask
that does not exist. Every change is a `core.desk.Helpdesk` command, audited with their address.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.accounts import LINK_LIFETIME, SignInRefused, SignInThrottled
from core.customer_accounts import CustomerSessionView
from core.desk import Helpdesk
from core.desk_portal import CustomerRequest
from core.errors import TicketNotFound, UsageError
from core.models import Priority
from core.portal_views import ALL_BUT_CLOSED, PORTAL_PAGE, CustomerStatus, PortalFilter
from core.worker_tickets import parse_priority
from web.forms import client_of, double_submitted, download, number, uploaded_files

PORTAL_COOKIE = "postdesk_portal"
SIGN_IN_COOKIE = "postdesk_portal_sign_in"  # double-submit token of the sign-in forms, before any session
HOME = "/portal"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "web" / "portal"
MAX_FILES = 20
STATUS_NAMES = {CustomerStatus.OPEN: "Open", CustomerStatus.IN_PROGRESS: "In progress",
                CustomerStatus.ANSWERED: "Answered", CustomerStatus.WAITING_USER: "Waiting for you",
                CustomerStatus.CLOSED: "Closed"}
DONE = {"opened": "Your request is filed: we answer here and by mail.", "replied": "Your answer is filed.",
        "closed": "The request is closed.", "closed-already": "The request was closed already."}
NO_SUCH_TICKET = "There is no such request among yours."  # the same words for a mask of no one and of someone else

Handler = Callable[[Request, CustomerSessionView], Awaitable[Response]]


def portal_routes(desk: Helpdesk) -> list[BaseRoute]:
    """The portal's routes, for web.app to serve beside the desk's."""
    pages = _Portal(desk)
    signed = pages.signed
    return [
        Route("/portal/sign-in", pages.sign_in_form, methods=["GET"]),
        Route("/portal/sign-in", pages.ask_for_link, methods=["POST"]),
        Route("/portal/sign-in/{token}", pages.link_form, methods=["GET"]),
        Route("/portal/sign-in/{token}", pages.sign_in_by_link, methods=["POST"]),
        Route("/portal/sign-out", signed(pages.sign_out), methods=["POST"]),
        Route(HOME, signed(pages.ticket_list), methods=["GET"]),
        Route("/portal/new", signed(pages.new_form), methods=["GET"]),
        Route("/portal/new", signed(pages.new_ticket), methods=["POST"]),
        Route("/portal/tickets/{mask}", signed(pages.ticket_page), methods=["GET"]),
        Route("/portal/tickets/{mask}/reply", signed(pages.reply), methods=["POST"]),
        Route("/portal/tickets/{mask}/close", signed(pages.close), methods=["POST"]),
        Route("/portal/tickets/{mask}/attachments/{id:int}", signed(pages.attachment), methods=["GET"]),
        Route("/portal/{rest:path}", signed(pages.no_such_page), methods=["GET", "POST"]),
    ]


class _Portal:
    """The handlers, sharing the Helpdesk and the portal's templates."""

    def __init__(self, desk: Helpdesk) -> None:
        self.desk = desk
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                            undefined=jinja2.StrictUndefined)
        self.templates.filters["when"] = _when
        self.templates.globals.update(status_names=STATUS_NAMES)
        self.secure = desk.settings.web.secure_cookies

    # --- plumbing -----------------------------------------------------------------------------------

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("live", None)
        context.setdefault("badge", 0)
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=status)

    async def page(self, name: str, live: CustomerSessionView, status: int = 200, **context: Any) -> HTMLResponse:
        """A page for a signed-in customer: the menu's badge counts their tickets waiting for them."""
        badge = await run_in_threadpool(self.desk.waiting_for_customer, live.email)
        return self.render(name, status, live=live, badge=badge, **context)

    def signed(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Only with a live customer session; POSTs only with its CSRF token. A stranger learns nothing of the path."""
        async def endpoint(request: Request) -> Response:
            token = request.cookies.get(PORTAL_COOKIE, "")
            live = await run_in_threadpool(self.desk.portal_session, token) if token else None
            if live is None:
                response = RedirectResponse("/portal/sign-in", status_code=303)
                if token:  # ended, expired or forged: the browser may forget it
                    response.delete_cookie(PORTAL_COOKIE, path=HOME)
                return response
            if request.method == "POST":
                request.state.form = await request.form(max_fields=50, max_files=MAX_FILES)
                if not secrets.compare_digest(str(request.state.form.get("csrf", "")), live.csrf_token):
                    return await self.page("error.html.j2", live, 403, title="Forbidden", message=(
                        "This form is out of date or was not sent by this portal: nothing was changed. "
                        "Reload the page and try again."))
            try:
                return await handler(request, live)
            except TicketNotFound:
                return await self.page("error.html.j2", live, 404, title="Not found", message=NO_SUCH_TICKET)
        return endpoint

    # --- signing in ---------------------------------------------------------------------------------

    def with_form_token(self, name: str, status: int, **context: Any) -> Response:
        """A sign-in page whose form carries a fresh token, and the cookie it must come back with (double submit)."""
        token = secrets.token_urlsafe(24)
        response = self.render(name, status, csrf=token, **context)
        response.set_cookie(SIGN_IN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure, path=HOME)
        return response

    def sign_in_form(self, request: Request, error: str = "", status: int = 200) -> Response:
        return self.with_form_token("sign_in.html.j2", status, error=error)

    async def ask_for_link(self, request: Request) -> Response:
        """Mail a one-time link; the answer is the same for any address, known or not."""
        form = await request.form(max_fields=10, max_files=0)
        if not double_submitted(request, form, SIGN_IN_COOKIE):
            return self.sign_in_form(request, "The form was out of date; try again.", 403)
        try:
            await run_in_threadpool(self.desk.mail_portal_link, str(form.get("email", "")), client_of(request))
        except SignInThrottled as exc:
            response = self.sign_in_form(request, f"Too many requests; try again in {exc.retry_after} s.", 429)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        return self.render("link_sent.html.j2", minutes=int(LINK_LIFETIME.total_seconds() // 60))

    def link_form(self, request: Request, error: str = "", status: int = 200) -> Response:
        """The link's page asks for one click: a mail scanner that fetches links must not use it up."""
        return self.with_form_token("link_sign_in.html.j2", status, error=error,
                                    action=f"/portal/sign-in/{quote(request.path_params['token'])}")

    async def sign_in_by_link(self, request: Request) -> Response:
        form = await request.form(max_fields=10, max_files=0)
        if not double_submitted(request, form, SIGN_IN_COOKIE):
            return self.link_form(request, "The page was out of date; press the button again.", 403)
        try:
            signed = await run_in_threadpool(self.desk.portal_sign_in, request.path_params["token"], client_of(request))
        except SignInRefused as exc:
            return self.sign_in_form(request, str(exc), 401)
        response = RedirectResponse(HOME, status_code=303)
        response.set_cookie(PORTAL_COOKIE, signed.token, httponly=True, samesite="lax", secure=self.secure, path=HOME)
        response.delete_cookie(SIGN_IN_COOKIE, path=HOME)
        return response

    async def sign_out(self, request: Request, live: CustomerSessionView) -> Response:
        await run_in_threadpool(self.desk.portal_sign_out, request.cookies.get(PORTAL_COOKIE, ""))
        response = RedirectResponse("/portal/sign-in", status_code=303)
        response.delete_cookie(PORTAL_COOKIE, path=HOME)
        return response

    # --- the list -----------------------------------------------------------------------------------

    async def ticket_list(self, request: Request, live: CustomerSessionView) -> Response:
        query = request.query_params
        typed = {key: query.get(key, "").strip() for key in ("from", "to", "q")}
        chosen = _statuses(query)
        try:
            wanted = PortalFilter(chosen, *_days(typed["from"], typed["to"]), typed["q"], max(number(query.get("page"), 1), 1))
            rows = await run_in_threadpool(self.desk.customer_tickets, live.email, wanted)
        except UsageError as exc:
            return await self.page("tickets.html.j2", live, 400, rows=[], error=str(exc), chosen=chosen,
                                   typed=typed, pages={})
        return await self.page("tickets.html.j2", live, rows=rows, error="", chosen=chosen, typed=typed,
                               pages=_pages(query, wanted.page, len(rows)))

    # --- one ticket ---------------------------------------------------------------------------------

    async def ticket_page(self, request: Request, live: CustomerSessionView, *, status: int = 200,
                          error: str = "", draft: str = "") -> Response:
        ticket = await run_in_threadpool(self.desk.customer_ticket, live.email, request.path_params["mask"])
        return await self.page("ticket.html.j2", live, status, t=ticket, error=error, draft=draft,
                               done=DONE.get(request.query_params.get("done", ""), ""))

    async def reply(self, request: Request, live: CustomerSessionView) -> Response:
        form: FormData = request.state.form
        mask, text = request.path_params["mask"], str(form.get("text", ""))
        try:
            await run_in_threadpool(lambda: self.desk.customer_reply(live, mask, text, uploaded_files(form)))
        except UsageError as exc:
            return await self.ticket_page(request, live, status=400, error=str(exc), draft=text)
        return RedirectResponse(_ticket_url(mask, "replied"), status_code=303)

    async def close(self, request: Request, live: CustomerSessionView) -> Response:
        mask = request.path_params["mask"]
        closed = await run_in_threadpool(self.desk.customer_close, live, mask)
        return RedirectResponse(_ticket_url(mask, "closed" if closed else "closed-already"), status_code=303)

    async def attachment(self, request: Request, live: CustomerSessionView) -> Response:
        found, data = await run_in_threadpool(self.desk.customer_attachment, live.email, request.path_params["mask"],
                                              request.path_params["id"])
        return download(data, found.filename)

    async def no_such_page(self, request: Request, live: CustomerSessionView) -> Response:
        if request.method == "GET" and not request.path_params["rest"]:  # /portal/
            return RedirectResponse(HOME, status_code=301)
        return await self.page("error.html.j2", live, 404, title="Not found", message="There is no such page.")

    # --- a new ticket -------------------------------------------------------------------------------

    async def new_form(self, request: Request, live: CustomerSessionView, *, error: str = "", status: int = 200,
                       values: dict[str, str] | None = None) -> Response:
        return await self.page("new_ticket.html.j2", live, status, error=error, priorities=[p.value for p in Priority],
                               values=values or {"subject": "", "text": "", "priority": Priority.NORMAL.value})

    async def new_ticket(self, request: Request, live: CustomerSessionView) -> Response:
        form: FormData = request.state.form
        values = {key: str(form.get(key, "")) for key in ("subject", "text", "priority")}

        def open_it() -> str:
            wanted = CustomerRequest(values["subject"], values["text"], parse_priority(values["priority"] or "normal"),
                                     uploaded_files(form))
            return self.desk.customer_open_ticket(live, wanted)
        try:
            mask = await run_in_threadpool(open_it)
        except UsageError as exc:
            return await self.new_form(request, live, error=str(exc), status=400, values=values)
        return RedirectResponse(_ticket_url(mask, "opened"), status_code=303)


def _statuses(query: QueryParams) -> tuple[CustomerStatus, ...]:
    """The statuses ticked; none (or none known): all but closed."""
    known = {s.value: s for s in CustomerStatus}
    return tuple(known[s] for s in dict.fromkeys(query.getlist("status")) if s in known) or ALL_BUT_CLOSED


def _days(start: str, end: str) -> tuple[date | None, date | None]:
    """The created-from and -to days as typed (YYYY-MM-DD, as <input type=date> sends them); UsageError otherwise."""
    first, last = _day(start, "from"), _day(end, "to")
    if first and last and first > last:
        raise UsageError("the “from” date is after the “to” date")
    return first, last


def _day(value: str, which: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"“{value[:40]}” is no date: give the “{which}” date as YYYY-MM-DD") from None


def _pages(query: QueryParams, page: int, shown: int) -> dict[str, str]:
    """Links to the previous and the next page, with the same filters."""
    kept = [(key, value) for key, value in query.multi_items() if key != "page"]

    def link(number: int) -> str:
        return f"{HOME}?" + urlencode([*kept, ("page", str(number))])
    pages = {"prev": link(page - 1)} if page > 1 else {}
    if shown == PORTAL_PAGE:  # a full page: there may be more
        pages["next"] = link(page + 1)
    return pages


def _ticket_url(mask: str, done: str) -> str:
    return f"/portal/tickets/{quote(mask.strip().upper())}?" + urlencode({"done": done})


def _when(moment: datetime) -> str:
    """A time as the pages show it, in UTC (a mail's Date may carry the sender's own offset)."""
    return f"{moment.astimezone(timezone.utc) if moment.tzinfo else moment:%Y-%m-%d %H:%M}"
