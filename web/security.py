"""What every response carries and every request is held to, before any page runs.

- Headers: a Content-Security-Policy with no inline script and no framing (a response that sets its own,
  as web.mail_html's sandboxed view does, keeps it), nosniff, no referrer.
- Size: a request body over `[web] max_upload_bytes` is refused with 413 before it is read whole,
  whether it says its length or streams it.
- The client's address: the peer's, or what X-Forwarded-For says when the peer is a trusted proxy.
- Server-Timing: how long the desk took to start its answer (bench/web.py reads it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
           (b"cross-origin-opener-policy", b"same-origin")]


class TooLarge(Exception):
    """The body grew past the limit while it was read."""


class Guard:
    """ASGI middleware: the security headers on every response, and the body size limit."""

    def __init__(self, app: ASGIApp, max_body: int, trusted_proxies: Sequence[str] = ()) -> None:
        self.app, self.max_body, self.trusted = app, max_body, frozenset(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["client"] = (client_address(scope, self.trusted), (scope.get("client") or ("", 0))[1])
        started = False
        began = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {name for name, _ in message.get("headers", [])}
                timing = (b"server-timing", f"app;dur={(time.perf_counter() - began) * 1000:.1f}".encode())
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in names), timing]
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _too_large(send_with_headers)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise TooLarge()
            return message

        try:
            await self.app(scope, counted, send_with_headers)
        except TooLarge:
            if not started:
                await _too_large(send_with_headers)


async def _too_large(send: Send) -> None:
    body = b"413: the request is larger than this desk accepts ([web] max_upload_bytes)\n"
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def client_address(scope: Scope, trusted: frozenset[str]) -> str:
    """Who is asking: the peer, or the nearest address a trusted proxy put in X-Forwarded-For."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if peer not in trusted:
        return str(peer)
    forwarded = dict(scope.get("headers", [])).get(b"x-forwarded-for", b"").decode("latin-1")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    while hops and hops[-1] in trusted:
        hops.pop()
    return hops[-1][:64] if hops else str(peer)
