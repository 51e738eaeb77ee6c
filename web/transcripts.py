"""The transcript page: ciphertext served to anyone with the link, decrypted only in the browser."""

from __future__ import annotations

from starlette.routing import BaseRoute

from core.desk import Helpdesk


def transcript_routes(desk: Helpdesk) -> list[BaseRoute]:
    return []
