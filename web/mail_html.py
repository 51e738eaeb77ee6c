"""A mail's HTML as the desk shows it: sanitised by nh3, remote images held back, in a sandbox of its own.

The view is a document of its own, framed by the ticket page. Its Content-Security-Policy makes it a
sandbox (no script, an opaque origin: never the desk's), loads nothing but inline styles and data:
images (remote ones too once the worker asks), and lets only the desk's own pages frame it. The
sanitiser is the first wall, the policy the second: either alone keeps the mail's script from running.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nh3
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from core.accounts import SessionView
from core.desk import Helpdesk
from core.errors import UsageError

TAGS = {"p", "br", "b", "i", "u", "s", "strong", "em", "small", "sub", "sup", "a", "ul", "ol", "li", "dl", "dt",
        "dd", "table", "caption", "thead", "tbody", "tfoot", "tr", "td", "th", "div", "span", "blockquote", "pre",
        "code", "h1", "h2", "h3", "h4", "h5", "h6", "img", "hr", "font", "center"}
DROPPED_WITH_CONTENT = {"script", "style", "title", "iframe", "object", "embed", "template", "noscript", "svg",
                        "math", "form", "select", "textarea", "button"}
ATTRIBUTES = {
    "*": {"style", "title", "dir", "lang", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "font": {"color", "face", "size"},
    "table": {"width", "border", "cellpadding", "cellspacing"},
    "td": {"width", "colspan", "rowspan", "valign"},
    "th": {"width", "colspan", "rowspan", "valign"},
    "ol": {"start", "type"},
}
# no property that takes a url(): a background image is a remote image too
STYLE_PROPERTIES = {"color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
                    "text-align", "text-decoration", "text-indent", "line-height", "white-space", "vertical-align",
                    "margin", "margin-top", "margin-bottom", "margin-left", "margin-right", "padding",
                    "padding-top", "padding-bottom", "padding-left", "padding-right", "border", "border-collapse",
                    "width", "max-width", "height", "display"}
LINK_SCHEMES = ("http:", "https:", "mailto:")
REMOTE_SCHEMES = ("http:", "https:")
VIEW_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:{remote}; frame-ancestors 'self'"

Handler = Callable[[Request, SessionView], Awaitable[Response]]


@dataclass(frozen=True)
class SanitisedMail:
    """A mail's HTML made safe to show, and how many remote images were taken out of it."""

    html: str
    blocked_images: int


def sanitise(html: str, *, images: bool) -> SanitisedMail:
    """The HTML with only formatting left: no script, no handlers, links to the web or mail only, and
    images from data: alone unless `images` (the worker asked), when http and https ones stay too."""
    blocked = 0

    def keep(element: str, attribute: str, value: str) -> str | None:
        nonlocal blocked
        scheme = value.strip().lower()
        if element == "a" and attribute == "href":
            return value if scheme.startswith(LINK_SCHEMES) else None
        if element == "img" and attribute == "src":
            if scheme.startswith("data:image/") or (images and scheme.startswith(REMOTE_SCHEMES)):
                return value
            if scheme.startswith(REMOTE_SCHEMES):
                blocked += 1  # counted for the notice; cid: and the like are simply dropped
            return None
        return value

    cleaned = nh3.clean(html, tags=TAGS, clean_content_tags=DROPPED_WITH_CONTENT, attributes=ATTRIBUTES,
                        attribute_filter=keep, link_rel="noopener noreferrer",
                        set_tag_attribute_values={"a": {"target": "_blank"}},
                        url_schemes={"http", "https", "mailto", "data"}, url_relative="deny",
                        filter_style_properties=STYLE_PROPERTIES)
    return SanitisedMail(cleaned, blocked)


def sanitised(html: str, *, images: bool) -> str:
    """The HTML made safe to show (see `sanitise`)."""
    return sanitise(html, images=images).html


def document(mail: SanitisedMail) -> str:
    """The whole page of the view: the sanitised mail, after a line saying what was held back."""
    notice = ""
    if mail.blocked_images:
        plural = "s" if mail.blocked_images != 1 else ""
        notice = (f'<p style="font:small sans-serif;background-color:#fff3cd;padding:4px">'
                  f'{mail.blocked_images} remote image{plural} blocked: "Show remote images" under this frame '
                  f'loads {"them" if plural else "it"}.</p>\n')
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\">"
            f"<title>Mail</title></head>\n<body>\n{notice}{mail.html}\n</body></html>\n")


def mail_view(desk: Helpdesk) -> Handler:
    """GET /tickets/{mask}/messages/{number}/html: one message's HTML, sanitised, in its own sandbox."""
    async def view(request: Request, live: SessionView) -> Response:
        images = request.query_params.get("images") == "1"
        try:
            html = await run_in_threadpool(desk.message_html, request.path_params["mask"],
                                           request.path_params["number"])
        except UsageError as exc:
            return PlainTextResponse(str(exc), status_code=404)
        if not html:
            return PlainTextResponse("this message has no HTML part", status_code=404)
        page = document(await run_in_threadpool(sanitise, html, images=images))
        return HTMLResponse(page, headers={
            "content-security-policy": VIEW_CSP.format(remote=" https: http:" if images else ""),
            "x-content-type-options": "nosniff", "x-frame-options": "SAMEORIGIN", "cache-control": "no-store"})
    return view
