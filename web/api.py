"""The JSON API under /api/v1: what a script does with a worker's API token, through the CLI's commands.

A request carries `Authorization: Bearer <token>` (`postdesk worker token EMAIL`); without a live
token every path answers 401 alike. The acting worker is the token's, as if they ran the CLI with
`--as`. Lists and tickets have the field names of `postdesk tickets/search/show --json`; a change
answers `{"changed": [{"mask", "said", "changed", "status"}]}`, all or nothing as in the CLI. Every
refusal is `{"error": "<one line>"}`: 400 bad input, 401 no token, 404 no such ticket, worker or
path, 405 wrong method, 503 the database failed (413 comes from web.security.Guard). No cookies and
no CSRF token: a browser never sends a bearer token on its own.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.desk import Actor, Helpdesk, TicketChanged
from core.errors import NotFound, PostdeskError, StorageError, TicketNotFound, UsageError
from core.ticket_views import DEFAULT_STATUSES, PRIORITIES, SEARCH_LIMIT, SEARCHED, STATUSES, TicketFilter
from web.actions import ACTIONS, BULK_ACTIONS, run_action

API = "/api/v1"
API_SYSTEM = "api"
EVERY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # refused here with JSON, not by Starlette
NO_STORE = {"cache-control": "no-store"}

Handler = Callable[[Request, str], Awaitable[Response]]  # the request and the acting worker's address
Body = dict[str, Any]


def api_routes(desk: Helpdesk) -> list[Route]:
    """The API's routes, to add to the desk's application."""
    api = _Api(desk)
    return [
        Route(f"{API}/tickets", api.door(api.list_tickets, "GET"), methods=EVERY_METHOD),
        Route(f"{API}/search", api.door(api.search, "GET"), methods=EVERY_METHOD),
        Route(f"{API}/tickets/{{mask}}", api.door(api.show, "GET"), methods=EVERY_METHOD),
        Route(f"{API}/tickets/{{mask}}/{{action}}", api.door(api.act, "POST"), methods=EVERY_METHOD),
        Route(f"{API}/bulk/{{action}}", api.door(api.bulk, "POST"), methods=EVERY_METHOD),
        Route(API, api.door(api.nowhere, *EVERY_METHOD), methods=EVERY_METHOD),
        Route(f"{API}/{{rest:path}}", api.door(api.nowhere, *EVERY_METHOD), methods=EVERY_METHOD),
    ]


class _Api:
    """The handlers, sharing the Helpdesk."""

    def __init__(self, desk: Helpdesk) -> None:
        self.desk = desk

    def door(self, handler: Handler, *methods: str) -> Callable[[Request], Awaitable[Response]]:
        """Only with a live token and an allowed method; core's errors become JSON with their status."""
        allowed = {*methods, "HEAD"} if "GET" in methods else set(methods)

        async def endpoint(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _unauthorized("an API token is needed: Authorization: Bearer <token>", "")
            worker = await run_in_threadpool(self.desk.api_worker, token.strip())
            if worker is None:
                return _unauthorized("this API token is unknown or revoked", ', error="invalid_token"')
            if request.method not in allowed:
                return _error(405, f"{request.method} is not allowed here", {"allow": ", ".join(sorted(allowed))})
            try:
                return await handler(request, worker)
            except (TicketNotFound, NotFound) as exc:
                return _error(404, str(exc))
            except StorageError as exc:
                return _error(503, str(exc))
            except PostdeskError as exc:
                return _error(400, str(exc))
        return endpoint

    async def list_tickets(self, request: Request, worker: str) -> Response:
        return _json(await run_in_threadpool(self.desk.tickets, _ticket_filter(request.query_params, worker)))

    async def search(self, request: Request, worker: str) -> Response:
        query = request.query_params
        words = query.get("q", "").strip()
        if not words:
            raise UsageError("q is missing: the words to search for")
        statuses = _statuses(query, SEARCHED)  # as `postdesk search`
        limit = _number(query, "limit", SEARCH_LIMIT)

        return _json(await run_in_threadpool(self.desk.search, words, limit, statuses))

    async def show(self, request: Request, worker: str) -> Response:
        return _json(await run_in_threadpool(self.desk.ticket, request.path_params["mask"]))

    async def act(self, request: Request, worker: str) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            return _error(404, f"no action {action!r}: one of {', '.join(ACTIONS)}")
        body = await _body(request)
        return _changed(await run_in_threadpool(self._apply, action, [request.path_params["mask"]], body, worker))

    async def bulk(self, request: Request, worker: str) -> Response:
        action = request.path_params["action"]
        if action not in BULK_ACTIONS:
            return _error(404, f"no bulk action {action!r}: one of {', '.join(BULK_ACTIONS)}")
        body = await _body(request)
        return _changed(await run_in_threadpool(self._apply, action, _masks(body), body, worker))

    async def nowhere(self, request: Request, worker: str) -> Response:
        return _error(404, f"no such path: {request.url.path}")

    def _apply(self, action: str, masks: list[str], body: Body, worker: str) -> list[TicketChanged]:
        """One Helpdesk command for the request; runs in a worker thread."""
        return run_action(self.desk, action, masks, _BodyFields(body), Actor(worker, API_SYSTEM, "an API token"))


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(value, status_code=status, headers={**NO_STORE, **(headers or {})})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return _json({"error": " ".join(message.split())}, status, headers)


def _unauthorized(message: str, detail: str) -> JSONResponse:
    return _error(401, message, {"www-authenticate": f'Bearer realm="postdesk"{detail}'})


def _changed(done: list[TicketChanged]) -> JSONResponse:
    return _json({"changed": [asdict(change) for change in done]})


async def _body(request: Request) -> Body:
    """The request's JSON object; an empty body is an empty object (`POST …/close` needs nothing)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise UsageError("send the body as JSON (Content-Type: application/json)")
    try:
        value = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        raise UsageError("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise UsageError("the body must be a JSON object")
    return value


def _text(body: Body, name: str) -> str:
    value = _optional(body, name)
    if value is None:
        raise UsageError(f"{name} is missing")
    return value


def _optional(body: Body, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{name} must be a string")
    return value if value and value.strip() else None


def _masks(body: Body) -> list[str]:
    masks = body.get("masks")
    if not isinstance(masks, list) or not masks or not all(isinstance(m, str) and m.strip() for m in masks):
        raise UsageError('masks is missing: give {"masks": ["XER-83472-879", ...]}')
    return masks


class _BodyFields:
    """A JSON body's values as web.actions reads them."""

    missing_due = 'give "until" (a time) or "for" (how long) to wait'

    def __init__(self, body: Body) -> None:
        self.body = body

    def required(self, name: str) -> str:
        return _text(self.body, name)

    def optional(self, name: str) -> str | None:
        return _optional(self.body, name)


def _ticket_filter(query: QueryParams, worker: str) -> TicketFilter:
    """The query of GET /tickets, read as `postdesk tickets` reads its options (`owner=me` is the token's worker)."""
    priorities = tuple(query.getlist("priority"))
    unknown = set(priorities) - set(PRIORITIES)
    if unknown:
        raise UsageError(f"no priority {sorted(unknown)[0]!r}: {', '.join(PRIORITIES)}")
    return TicketFilter(statuses=_statuses(query, DEFAULT_STATUSES), groups=tuple(query.getlist("group")),
                        buckets=tuple(query.getlist("bucket")), priorities=priorities,
                        owners=tuple(worker if owner == "me" else owner for owner in query.getlist("owner")),
                        sort=query.get("sort", "updated"), descending=query.get("reverse", "") not in ("1", "true"),
                        limit=_number(query, "limit", 50), page=_number(query, "page", 1))


def _statuses(query: QueryParams, default: tuple[str, ...]) -> tuple[str, ...]:
    given = query.getlist("status")
    if "all" in given:
        return STATUSES
    unknown = set(given) - set(STATUSES)
    if unknown:
        raise UsageError(f"no status {sorted(unknown)[0]!r}: choose from {', '.join(STATUSES)} or all")
    return tuple(given) or default


def _number(query: QueryParams, name: str, default: int) -> int:
    value = query.get(name)
    try:
        return int(value) if value else default
    except ValueError:
        raise UsageError(f"{name} must be a whole number, not {value!r}") from None
