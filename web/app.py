"""The web desk's routes: sign-in, the ticket list, a ticket, its actions, a new ticket.

Every page but sign-in needs a live session; without one, any path (a mask that exists or not)
gets the same redirect to sign-in. Every form carries the session's CSRF token; a POST without it
changes nothing and gets 403. A change goes through core.desk.Helpdesk, as the CLI's do, and the
page says what it did (`closed`, `owner jane@… already`). A reply or change sent from a page that
is out of date (the ticket changed since: a customer wrote, another worker acted) is not applied:
the page shows the ticket as it is now and asks again.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from core.accounts import SessionView, SignInRefused, SignInThrottled
from core.desk import Actor, Helpdesk, NewTicket, TicketChanged
from core.errors import PostdeskError, TicketNotFound, UsageError
from core.models import Priority
from core.ticket_views import DEFAULT_STATUSES, STATUSES, TicketFilter, attachment_data
from core.worker_tickets import parse_priority
from web.mail_html import mail_view
from web.api import api_routes
from web.portal import portal_routes
from web.transcripts import transcript_routes
from web.actions import ACTIONS, BULK_ACTIONS, run_action
from web.forms import client_of, double_submitted, download, number, uploaded_files
from web.security import Guard

SESSION_COOKIE = "postdesk_session"
SIGN_IN_COOKIE = "postdesk_sign_in"  # double-submit token of the sign-in form, before any session exists
WEB_ACTOR = "web desk"
PAGE_SIZE = 50
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "web"
STATIC = Path(__file__).resolve().parent / "static"

Handler = Callable[[Request, SessionView], Awaitable[Response]]
_BADGE: ContextVar[int | None] = ContextVar("badge", default=None)  # open tickets awaiting an answer, per request


def create_app(desk: Helpdesk) -> Starlette:
    """The desk's ASGI application over one Helpdesk."""
    pages = _Pages(desk)
    routes = [
        Route("/sign-in", pages.sign_in_form, methods=["GET"]),
        Route("/sign-in", pages.sign_in, methods=["POST"]),
        Route("/sign-in/link", pages.ask_for_link, methods=["POST"]),
        Route("/sign-in/link/{token}", pages.link_form, methods=["GET"]),
        Route("/sign-in/link/{token}", pages.sign_in_by_link, methods=["POST"]),
        Route("/sign-out", pages.signed(pages.sign_out), methods=["POST"]),
        Route("/", pages.signed(pages.ticket_list), methods=["GET"]),
        Route("/bulk", pages.signed(pages.bulk), methods=["POST"]),
        Route("/new", pages.signed(pages.new_form), methods=["GET"]),
        Route("/new", pages.signed(pages.new_ticket), methods=["POST"]),
        Route("/tickets/{mask}", pages.signed(pages.ticket_page), methods=["GET"]),
        Route("/tickets/{mask}/attachments/{number:int}", pages.signed(pages.attachment, page=False),
              methods=["GET"]),
        Route("/tickets/{mask}/messages/{number:int}/html", pages.signed(mail_view(desk), page=False),
              methods=["GET"]),
        Route("/tickets/{mask}/{action}", pages.signed(pages.act), methods=["POST"]),
        Route("/favicon.ico", lambda request: RedirectResponse("/static/favicon.svg", status_code=301)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *api_routes(desk),
        *(portal_routes(desk) if desk.settings.portal.enabled else []),
        *transcript_routes(desk),
    ]
    web = desk.settings.web
    return Starlette(routes=routes, middleware=[Middleware(Guard, max_body=web.max_upload_bytes,
                                                           trusted_proxies=web.trusted_proxies)])


class _Pages:
    """The handlers, sharing the Helpdesk and the templates."""

    def __init__(self, desk: Helpdesk) -> None:
        self.desk = desk
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                            undefined=jinja2.StrictUndefined)
        self.secure = desk.settings.web.secure_cookies

    # --- plumbing -----------------------------------------------------------------------------------

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("badge", _BADGE.get())
        return HTMLResponse(self.templates.get_template(name).render(**context), status_code=status)

    def signed(self, handler: Handler, *, page: bool = True) -> Callable[[Request], Awaitable[Response]]:
        """Only with a live session; POSTs only with its CSRF token. A stranger learns nothing of the path.

        A `page` is drawn in the layout, whose menu shows the badge: only then is it counted.
        """
        async def endpoint(request: Request) -> Response:
            token = request.cookies.get(SESSION_COOKIE, "")
            live = await run_in_threadpool(self.desk.session, token) if token else None
            if live is None:
                wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/sign-in?{urlencode({'next': wanted})}", status_code=303)
            if page and request.method == "GET":
                _BADGE.set(await run_in_threadpool(self.desk.awaiting_answer))
            if request.method == "POST":
                form = await request.form(max_fields=1000, max_files=50)
                request.state.form = form
                if not secrets.compare_digest(str(form.get("csrf", "")), live.csrf_token):
                    return self.render("error.html.j2", 403, session=live, title="Forbidden",
                                       message="This form is out of date or was not sent by the desk: nothing "
                                               "was changed. Reload the page and try again.")
            try:
                return await handler(request, live)
            except TicketNotFound as exc:
                return self.render("error.html.j2", 404, session=live, title="Not found", message=str(exc))
        return endpoint

    def actor(self, live: SessionView) -> Actor:
        return Actor(live.worker_email, WEB_ACTOR, "a signed-in worker")

    # --- sign-in ------------------------------------------------------------------------------------

    async def sign_in_form(self, request: Request, error: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = self.render("sign_in.html.j2", status, error=error, csrf=token,
                               next=_local(request.query_params.get("next", "/")), session=None)
        response.set_cookie(SIGN_IN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure, path="/")
        return response

    async def sign_in(self, request: Request) -> Response:
        form = await request.form(max_fields=10, max_files=0)
        if not double_submitted(request, form, SIGN_IN_COOKIE):
            return await self.sign_in_form(request, "The sign-in form was out of date; try again.", 403)
        client = client_of(request)
        try:
            signed = await run_in_threadpool(self.desk.sign_in, str(form.get("email", "")),
                                              str(form.get("password", "")), client)
        except SignInThrottled as exc:
            return await self.throttled(request, exc)
        except SignInRefused as exc:
            return await self.sign_in_form(request, str(exc), 401)
        response = RedirectResponse(_local(str(form.get("next", "/"))), status_code=303)
        response.set_cookie(SESSION_COOKIE, signed.token, httponly=True, samesite="lax", secure=self.secure, path="/")
        response.delete_cookie(SIGN_IN_COOKIE, path="/")
        return response

    async def throttled(self, request: Request, exc: SignInThrottled) -> Response:
        """The sign-in form again, 429, with when to try next."""
        response = await self.sign_in_form(request, str(exc), 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    async def ask_for_link(self, request: Request) -> Response:
        """Mail a one-time link; the answer is the same for any address, known or not."""
        form = await request.form(max_fields=10, max_files=0)
        if not double_submitted(request, form, SIGN_IN_COOKIE):
            return await self.sign_in_form(request, "The sign-in form was out of date; try again.", 403)
        client = client_of(request)
        try:
            await run_in_threadpool(self.desk.mail_sign_in_link, str(form.get("email", "")), client)
        except SignInThrottled as exc:
            return await self.throttled(request, exc)
        return self.render("link_sent.html.j2", session=None)

    async def link_form(self, request: Request) -> Response:
        """The link's page asks for one click: a mail scanner that fetches links must not use it up."""
        token = secrets.token_urlsafe(24)
        response = self.render("link_sign_in.html.j2", session=None, csrf=token,
                               action=f"/sign-in/link/{quote(request.path_params['token'])}")
        response.set_cookie(SIGN_IN_COOKIE, token, httponly=True, samesite="strict", secure=self.secure, path="/")
        return response

    async def sign_in_by_link(self, request: Request) -> Response:
        form = await request.form(max_fields=10, max_files=0)
        if not double_submitted(request, form, SIGN_IN_COOKIE):
            return await self.link_form(request)
        client = client_of(request)
        try:
            signed = await run_in_threadpool(self.desk.sign_in_with_link, request.path_params["token"], client)
        except SignInRefused as exc:
            return await self.sign_in_form(request, str(exc), 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, signed.token, httponly=True, samesite="lax", secure=self.secure, path="/")
        response.delete_cookie(SIGN_IN_COOKIE, path="/")
        return response

    async def sign_out(self, request: Request, live: SessionView) -> Response:
        await run_in_threadpool(self.desk.sign_out, request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- the list -----------------------------------------------------------------------------------

    async def ticket_list(self, request: Request, live: SessionView) -> Response:
        query = request.query_params
        statuses = tuple(s for s in query.getlist("status") if s in STATUSES) or DEFAULT_STATUSES
        words = query.get("q", "").strip()
        page = max(number(query.get("page"), 1), 1)
        error = ""
        try:
            if words:
                rows = await run_in_threadpool(self.desk.search, words)
            else:
                wanted = TicketFilter(statuses=statuses, groups=_some(query.get("group")),
                                      owners=_some(query.get("owner")), sort=query.get("sort", "updated"),
                                      limit=PAGE_SIZE, page=page)
                rows = await run_in_threadpool(self.desk.tickets, wanted)
        except UsageError as exc:
            rows, error = [], str(exc)
        if query.get("fragment") == "rows":  # desk.js asks every little while: the rows alone, and the badge
            rows_only = self.render("ticket_rows.html.j2", session=live, rows=rows)
            rows_only.headers["x-badge"] = str(_BADGE.get() or 0)
            return rows_only
        return self.render("tickets.html.j2", session=live, rows=rows, statuses=STATUSES, chosen=statuses,
                           q=words, group=query.get("group", ""), owner=query.get("owner", ""),
                           sort=query.get("sort", "updated"), page=page, page_size=PAGE_SIZE, error=error,
                           said=query.getlist("said"), bulk_actions=BULK_ACTIONS,
                           priorities=[p.value for p in Priority])

    async def bulk(self, request: Request, live: SessionView) -> Response:
        form: FormData = request.state.form
        masks = [str(m) for m in form.getlist("mask")]
        action = str(form.get("action", ""))
        if not masks or action not in BULK_ACTIONS:
            return RedirectResponse("/?" + urlencode({"said": "choose tickets and an action"}), status_code=303)
        try:
            done = await run_in_threadpool(self._apply, action, masks, form, live)
        except PostdeskError as exc:
            return RedirectResponse("/?" + urlencode({"said": f"nothing changed: {exc}"}), status_code=303)
        return RedirectResponse("/?" + urlencode([("said", f"{c.mask}: {c.said}") for c in done]), status_code=303)

    # --- one ticket ---------------------------------------------------------------------------------

    async def ticket_page(self, request: Request, live: SessionView, *, status: int = 200, notice: str = "",
                          draft: str = "") -> Response:
        ticket = await run_in_threadpool(self.desk.ticket, request.path_params["mask"])
        if ticket["mask"] != request.path_params["mask"]:  # a prefix: the page of the whole mask
            return RedirectResponse(f"/tickets/{quote(ticket['mask'])}", status_code=303)
        with_html = await run_in_threadpool(self.desk.html_message_numbers, ticket["mask"])
        return self.render("ticket.html.j2", status, session=live, t=ticket, notice=notice, draft=draft,
                           said=request.query_params.getlist("said"), priorities=[p.value for p in Priority],
                           with_html=with_html)

    async def attachment(self, request: Request, live: SessionView) -> Response:
        def read() -> tuple[dict[str, Any], bytes]:
            with self.desk.database.read() as session:
                return attachment_data(session.connection(), request.path_params["mask"],
                                       request.path_params["number"])
        try:
            found, data = await run_in_threadpool(read)
        except UsageError as exc:
            return self.render("error.html.j2", 404, session=live, title="Not found", message=str(exc))
        name = found["filename"] or f"attachment-{request.path_params['number']}"
        return download(data, name)

    async def act(self, request: Request, live: SessionView) -> Response:
        mask, action = request.path_params["mask"], request.path_params["action"]
        form: FormData = request.state.form
        if action not in ACTIONS:
            return self.render("error.html.j2", 404, session=live, title="Not found", message="no such action")
        current = await run_in_threadpool(self.desk.ticket, mask)
        if str(form.get("seen", "")) != current["updated"]:
            return await self.ticket_page(request, live, status=409, draft=str(form.get("text", "")), notice=(
                "The ticket changed since you opened it (see below): nothing was done. Check, then send again."))
        try:
            done = await run_in_threadpool(self._apply, action, [current["mask"]], form, live)
        except UsageError as exc:
            return await self.ticket_page(request, live, status=400, notice=str(exc),
                                          draft=str(form.get("text", "")))
        return RedirectResponse(f"/tickets/{quote(current['mask'])}?" + urlencode([("said", c.said) for c in done]),
                                status_code=303)

    def _apply(self, action: str, masks: list[str], form: FormData, live: SessionView) -> list[TicketChanged]:
        """One Helpdesk command for the form; runs in a worker thread."""
        return run_action(self.desk, action, masks, _FormFields(form), self.actor(live), uploaded_files(form))

    # --- a new ticket -------------------------------------------------------------------------------

    async def new_form(self, request: Request, live: SessionView, *, error: str = "", status: int = 200,
                       values: dict[str, str] | None = None) -> Response:
        groups = await run_in_threadpool(self.desk.groups)
        blank = dict.fromkeys(("to", "cc", "subject", "group", "priority", "text", "owner"), "")
        return self.render("new_ticket.html.j2", status, session=live, error=error, values={**blank, **(values or {})},
                           groups=[g.name for g in groups], priorities=[p.value for p in Priority])

    async def new_ticket(self, request: Request, live: SessionView) -> Response:
        form: FormData = request.state.form
        values = {key: str(form.get(key, "")) for key in ("to", "cc", "subject", "group", "priority", "text", "owner")}
        try:
            request_ = NewTicket(to=_addresses(values["to"]), cc=_addresses(values["cc"]),
                                 subject=_required(form, "subject"), text=_required(form, "text"),
                                 priority=parse_priority(values["priority"] or "normal"), group=values["group"] or None,
                                 attachments=uploaded_files(form), notify=form.get("notify") == "on")
            mask = await run_in_threadpool(self.desk.open_ticket, request_, self.actor(live))
            if values["owner"]:
                await run_in_threadpool(self.desk.assign, [mask], values["owner"], self.actor(live))
        except (UsageError, PostdeskError) as exc:
            return await self.new_form(request, live, error=str(exc), status=400, values=values)
        return RedirectResponse(f"/tickets/{quote(mask)}?" + urlencode({"said": "opened"}), status_code=303)


def _local(target: str) -> str:
    """A redirect target on this desk only: a path, never another site (`//evil.example`, `https://…`)."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


def _some(value: str | None) -> tuple[str, ...]:
    return (value.strip(),) if value and value.strip() else ()


class _FormFields:
    """A form's values as web.actions reads them."""

    missing_due = "give a time to wait until, or how long to wait"

    def __init__(self, form: FormData) -> None:
        self.form = form

    def required(self, name: str) -> str:
        return _required(self.form, name)

    def optional(self, name: str) -> str | None:
        return _optional(self.form, name)


def _required(form: FormData, name: str) -> str:
    value = str(form.get(name, "")).strip()
    if not value:
        raise UsageError(f"{name} is missing")
    return str(form.get(name, ""))


def _optional(form: FormData, name: str) -> str | None:
    value = str(form.get(name, "")).strip()
    return value or None


def _addresses(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())

