"""The state one `postdesk` invocation shares between its commands: settings and database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from core.engine import open_engine
from core.schema import SCHEMA_HEAD, stored_revision
from core.settings import Settings, load_settings

if TYPE_CHECKING:
    from core.db import Database
    from core.desk import Helpdesk


@dataclass
class App:
    """Loads settings and opens the database only when a command first needs them.

    Read commands ask for `reader()`, a plain connection: the ORM, the models and the mail
    pipeline are imported only by commands that write, so reading starts fast.
    """

    config: str | None = None
    _settings: Settings | None = field(default=None, init=False)
    _db: Database | None = field(default=None, init=False)
    _engine: Engine | None = field(default=None, init=False)

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
            from core.db import open_configured
            from core.schema import ensure_schema

            self._db = open_configured(self.settings.database)
            if create:
                ensure_schema(self._db)
                self._ensure_default_group(self._db)
        return self._db

    def desk(self) -> Helpdesk:
        """The helpdesk's commands, on this invocation's settings and database."""
        from core.desk import Helpdesk

        return Helpdesk(self.settings, self.database())

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A connection for looking only, in one transaction, rolled back at the end."""
        with self._read_engine().connect() as connection:
            yield connection

    def _read_engine(self) -> Engine:
        if self._db is not None:
            return self._db.engine
        if self._engine is None:
            engine = open_engine(self.settings.database.url, self.settings.database.busy_timeout_seconds)
            if stored_revision(engine) != SCHEMA_HEAD:  # empty or behind: the full path creates or refuses
                engine.dispose()
                return self.database().engine
            self._engine = engine
        return self._engine

    def _ensure_default_group(self, db: Database) -> None:
        from core.groups import ensure_default_group_exists

        ensure_default_group_exists(db, self.settings.helpdesk)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
        if self._engine is not None:
            self._engine.dispose()
