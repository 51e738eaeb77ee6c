"""The helpdesk's commands on encrypted transcripts (core.transcripts): part of `core.desk.Helpdesk`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from core.db import Database
from core.settings import Settings
from core.transcripts import SealedTranscript, sealed_transcript


class TranscriptCommands:
    """A method per transcript use case, each one transaction; `Helpdesk` supplies settings, database and clock."""

    settings: Settings
    database: Database
    clock: Callable[[], datetime]

    def sealed_transcript(self, public_id: str) -> SealedTranscript | None:
        """The ciphertext behind a transcript link, for the page to decrypt; None once past its retention."""
        kept_since = self.clock() - timedelta(days=self.settings.transcripts.retention_days)
        with self.database.read() as session:
            return sealed_transcript(session, public_id, kept_since)
