"""What the desk's and the portal's pages read from a request alike: forms, files, the client, downloads."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from core.inbound import InboundAttachment


def double_submitted(request: Request, form: FormData, cookie: str) -> bool:
    """A sign-in form's token (no session yet): the cookie set with the form must come back in it."""
    expected = request.cookies.get(cookie, "")
    return bool(expected) and secrets.compare_digest(str(form.get("csrf", "")), expected)


def client_of(request: Request) -> str:
    """Who asks, as the throttles count them (web.security.Guard has applied trusted proxies' word)."""
    return request.client.host if request.client else "unknown"


def uploaded_files(form: FormData) -> tuple[InboundAttachment, ...]:
    """The files chosen in the form's `attachments` field (a choice of none sends one without a name)."""
    return tuple(InboundAttachment(item.filename, item.content_type or "application/octet-stream", item.file.read())
                 for item in form.getlist("attachments") if isinstance(item, UploadFile) and item.filename)


def download(data: bytes, filename: str) -> Response:
    """An attachment served to be saved, never shown in the desk's origin."""
    return Response(data, media_type="application/octet-stream",
                    headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}"})


def number(value: str | None, default: int) -> int:
    """A number from a query string; anything else is the default."""
    try:
        return int(value) if value else default
    except ValueError:
        return default
