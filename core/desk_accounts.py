"""The helpdesk's commands on workers' web identities: passwords, sign-in, sessions, API tokens.

Part of `core.desk.Helpdesk` (a base class, like core.desk_admin); the rules are core.accounts'.
A refused sign-in is committed before it is reported: the throttle and the audit log must see it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session
from datetime import datetime, timedelta

from core.accounts import (LINK_LIFETIME, SessionView, SignedIn, SignInRefused, api_token_worker, end_sessions,
                           live_session, new_api_token, new_sign_in_link, revoke_api_tokens, sessions_of,
                           set_password, sign_in, sign_in_with_link, sign_out)
from core.groups import ensure_default_group
from core.notify import Outbound, send_sign_in_link
from core.db import Database
from core.settings import Settings, WebSettings


View = TypeVar("View", covariant=True)


class LiveSession(Protocol[View]):
    def __call__(self, session: Session, token: str, now: datetime, *, idle: timedelta, absolute: timedelta,
                 write: bool = True) -> tuple[View | None, bool]: ...


def read_mostly(database: Database, web: WebSettings, now: datetime, live: LiveSession[View], token: str) -> View | None:
    """A session looked up without a write lock; written only when it expired or its last use is stale."""
    idle, absolute = timedelta(minutes=web.session_idle_minutes), timedelta(hours=web.session_hours)
    with database.read() as session:
        found, write_due = live(session, token, now, idle=idle, absolute=absolute, write=False)
    if not write_due:
        return found
    with database.write() as session:
        return live(session, token, now, idle=idle, absolute=absolute)[0]


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

    def mail_sign_in_link(self, email: str, client: str) -> None:
        """Mail a one-time sign-in link to the worker at this address, if there is one. Answers the same
        either way, so the form tells no one which addresses are workers'; throttled per client."""
        with self.database.write() as session:
            token = new_sign_in_link(session, email, client, self.clock())
            if token is None:
                return
            group = ensure_default_group(session, self.settings.helpdesk)
            url = f"{self.settings.web.base_url}/sign-in/link/{token}"
            send_sign_in_link(session, Outbound.from_settings(self.settings), group, email.strip().lower(), url,
                              int(LINK_LIFETIME.total_seconds() // 60), self.clock())

    def sign_in_with_link(self, token: str, client: str) -> SignedIn:
        """A session for a mailed link, once and within its minutes; SignInRefused otherwise."""
        with self.database.write() as session:
            return sign_in_with_link(session, token, client, self.clock())

    def session(self, token: str) -> SessionView | None:
        """The live session a cookie names (its last use now), or None."""
        return read_mostly(self.database, self.settings.web, self.clock(), live_session, token)

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
