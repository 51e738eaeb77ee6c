"""The helpdesk's commands for customers in the portal (core.portal): part of `core.desk.Helpdesk`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from core.db import Database
from core.settings import Settings


class PortalCommands:
    """A method per customer use case, each one transaction; `Helpdesk` supplies settings, database and clock."""

    settings: Settings
    database: Database
    clock: Callable[[], datetime]
