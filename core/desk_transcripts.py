"""The helpdesk's commands on encrypted transcripts (core.transcripts): part of `core.desk.Helpdesk`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from core.db import Database
from core.settings import Settings


class TranscriptCommands:
    """A method per transcript use case, each one transaction; `Helpdesk` supplies settings, database and clock."""

    settings: Settings
    database: Database
    clock: Callable[[], datetime]
