"""The transcript page: ciphertext served to anyone with the link, decrypted only in the browser.

`GET /transcripts/{id}` needs no session: the id opens nothing by itself, and the key, after the link's
`#`, is never sent here. The page carries the nonce and the ciphertext; web/static/transcript.js
decrypts them with WebCrypto and shows the conversation, or says that the key is missing or wrong.
An unknown id, or one past its retention, gets the very 404 of any unknown path. The page is never
cached (a shared computer keeps nothing of it) and never named in a Referer.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from core.desk import Helpdesk

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "web"
PRIVATE = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def transcript_routes(desk: Helpdesk) -> list[BaseRoute]:
    """The transcript page's route, to add to the desk's application."""
    page = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined).get_template("transcript.html.j2")

    async def transcript(request: Request) -> Response:
        sealed = await run_in_threadpool(desk.sealed_transcript, request.path_params["public_id"])
        if sealed is None:
            raise HTTPException(404)  # as a path no route takes: the same answer, whatever the id was
        return HTMLResponse(page.render(public_id=sealed.public_id, nonce=_base64(sealed.nonce),
                                        ciphertext=_base64(sealed.ciphertext)), headers=PRIVATE)

    return [Route("/transcripts/{public_id}", transcript, methods=["GET"])]


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
