"""The state one `postdesk` invocation shares between its commands: settings and database."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from core.db import Database, open_database
from core.groups import ensure_default_group
from core.models import Group
from core.schema import ensure_schema
from core.settings import Settings, load_settings


@dataclass
class App:
    """Loads settings and opens the database only when a command first needs them."""

    config: str | None = None
    _settings: Settings | None = field(default=None, init=False)
    _db: Database | None = field(default=None, init=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
            logging.basicConfig(level=self._settings.logging.level.upper(),
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            logging.getLogger("alembic").setLevel(logging.WARNING)
            logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every session at INFO
        return self._settings

    def database(self, *, create: bool = True) -> Database:
        """The database, with its schema created when empty (and refused when out of date)."""
        if self._db is None:
            self._db = open_database(self.settings.database.url)
            if create:
                ensure_schema(self._db)
                self._ensure_default_group(self._db)
        return self._db

    def _ensure_default_group(self, db: Database) -> None:
        """The settings' default group exists before any command looks for it (`worker add --group Support`)."""
        with db.read() as session:
            present = session.scalar(select(Group.id).where(Group.name == self.settings.helpdesk.default_group))
        if present is None:
            with db.write() as session:
                ensure_default_group(session, self.settings.helpdesk)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
