"""The customers' portal at /portal: sign-in by mailed link, their own tickets, nothing of the desk."""

from __future__ import annotations

from starlette.routing import BaseRoute

from core.desk import Helpdesk


def portal_routes(desk: Helpdesk) -> list[BaseRoute]:
    return []
