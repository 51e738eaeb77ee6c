"""The helpdesk's commands on workers' web identities: passwords, sign-in, sessions, API tokens.

Part of `core.desk.Helpdesk` (a base class, like core.desk_admin); the rules are core.accounts'.
A refused sign-in is committed before it is reported: the throttle and the audit log must see it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from core.accounts import (SessionView, SignedIn, SignInRefused, api_token_worker, end_sessions, live_session,
                           new_api_token, revoke_api_tokens, sessions_of, set_password, sign_in, sign_out)
from core.db import Database
from core.settings import Settings


class AccountCommands:
    """A method per account use case, each one transaction; `Helpdesk` supplies settings, database and clock."""

    settings: Settings
    database: Database
    clock: Callable[[], datetime]

    def set_password(self, email: str, password: str) -> int:
        """A worker's new password (`postdesk worker passwd`); their sessions end. Returns how many ended."""
        with self.database.write() as session:
            return set_password(session, email, password, self.clock())

    def sign_in(self, email: str, password: str, client: str) -> SignedIn:
        """A session for the right address and password; SignInRefused or SignInThrottled otherwise."""
        refused: SignInRefused | None = None
        with self.database.write() as session:
            try:
                return sign_in(session, email, password, client, self.clock())
            except SignInRefused as exc:
                refused = exc  # committed below, with the failure that the throttle counts
        raise refused

    def session(self, token: str) -> SessionView | None:
        """The live session a cookie names (its last use now), or None."""
        web = self.settings.web
        with self.database.write() as session:
            return live_session(session, token, self.clock(), idle=timedelta(minutes=web.session_idle_minutes),
                                absolute=timedelta(hours=web.session_hours))

    def sign_out(self, token: str) -> None:
        with self.database.write() as session:
            sign_out(session, token, self.clock())

    def sessions(self, email: str) -> list[SessionView]:
        with self.database.read() as session:
            return sessions_of(session, email)

    def revoke_sessions(self, email: str) -> int:
        """End every session of the worker (`postdesk worker sessions EMAIL --revoke`)."""
        with self.database.write() as session:
            return end_sessions(session, email, self.clock())

    def new_api_token(self, email: str, name: str = "") -> str:
        """A token for the JSON API, shown this once."""
        with self.database.write() as session:
            return new_api_token(session, email, name, self.clock())

    def api_worker(self, token: str) -> str | None:
        """The worker a live API token belongs to."""
        with self.database.read() as session:
            return api_token_worker(session, token)

    def revoke_api_tokens(self, email: str) -> int:
        with self.database.write() as session:
            return revoke_api_tokens(session, email, self.clock())
