"""Who a worker is on the web: passwords, sessions, API tokens, and the throttle on guessing.

A password is kept as argon2id (argon2-cffi's defaults, RFC 9106's second recommendation). A
session or API token is a random 256-bit value handed to the browser or script once; only its
SHA-256 is stored, so a copy of the database signs nobody in. A session ends when the worker signs
out, after `idle` without a request or `absolute` after sign-in, when the password changes, when
an administrator revokes it, and with the worker.

Refused sign-ins are counted per address and per client: past the limit within the window, the
next try is refused before the password is even checked, with the seconds to wait (HTTP 429,
Retry-After). Every refusal is in the audit log, so an administrator sees who is being guessed.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.errors import NotFound, PostdeskError, UsageError
from core.models import ApiToken, AuditEntry, SignInFailure, SignInLink, WebSession, Worker

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_PASSWORD = 10  # characters; a passphrase, not a PIN
MAX_PASSWORD = 1024  # argon2 hashes anything, but a megabyte "password" is a denial of service
THROTTLE_WINDOW = timedelta(minutes=15)
FAILURES_PER_ADDRESS = 5  # within the window; then that address waits, whoever tries
FAILURES_PER_CLIENT = 20  # within the window; then that client waits, whatever address it tries
SIGN_IN_ACTOR = "web sign-in"
LINK_LIFETIME = timedelta(minutes=15)
TOUCH_EVERY = timedelta(minutes=1)  # a session's last use is written at most this often (idle expiry is in hours)
LINKS_PER_ADDRESS = 3  # within the throttle window: more requests are answered alike and mail nothing


class SignInRefused(PostdeskError):
    """Wrong address or password: one answer for both, so the form tells no one which addresses exist."""

    def __init__(self, reason: str = "wrong address or password") -> None:
        super().__init__(reason)


class SignInThrottled(PostdeskError):
    """Too many refused sign-ins for this address or from this client; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    """A new session: the token for the cookie (shown once, never stored) and who it is."""

    token: str
    worker_email: str
    csrf_token: str


@dataclass(frozen=True)
class SessionView:
    """A live session, as a request finds it."""

    worker_email: str
    worker_name: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id, RFC 9106 low-memory defaults


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def set_password(session: Session, email: str, password: str, now: datetime) -> int:
    """Give the worker a (new) password; every session they had ends. Returns how many ended."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsageError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    worker = _worker(session, email)
    worker.password_hash = _hasher().hash(password)
    return end_sessions(session, worker.email, now)


def sign_in(session: Session, email: str, password: str, client: str, now: datetime) -> SignedIn:
    """Check the password and open a session; throttled and audited. The caller commits, refusals too."""
    address = email.strip().lower()
    wait = throttle_wait(session, address, client, now)
    if wait:
        raise SignInThrottled(wait)
    worker = session.scalars(select(Worker).where(Worker.email == address)).first()
    if worker is None or not _password_matches(worker, password[:MAX_PASSWORD]):
        session.add(SignInFailure(email=address[:320], client=client[:64], at=now))
        session.add(AuditEntry(ticket_id=None, at=now, actor=SIGN_IN_ACTOR, action="sign_in_failed",
                               detail=f"{address[:320]} from {client[:64]}"))
        raise SignInRefused()
    if _hasher().check_needs_rehash(worker.password_hash or ""):
        worker.password_hash = _hasher().hash(password)
    return _open_session(session, worker, client, now, "with a password")


def _open_session(session: Session, worker: Worker, client: str, now: datetime, how: str) -> SignedIn:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(WebSession(token_hash=token_hash(token), worker_id=worker.id, csrf_token=csrf, created_at=now,
                           last_seen_at=now))
    session.add(AuditEntry(ticket_id=None, at=now, actor=worker.email, action="sign_in",
                           detail=f"{how} from {client[:64]}"))
    return SignedIn(token, worker.email, csrf)


def new_sign_in_link(session: Session, email: str, client: str, now: datetime) -> str | None:
    """A one-time sign-in token for the worker at this address, or None (unknown address, or enough links
    asked for lately). Every request counts towards the client's throttle, known address or not."""
    address = email.strip().lower()
    count_link_request(session, client, now)
    worker = session.scalars(select(Worker).where(Worker.email == address)).first()
    if worker is None:
        return None
    recent = session.scalar(select(func.count()).select_from(SignInLink).where(
        SignInLink.worker_id == worker.id, SignInLink.created_at > now - THROTTLE_WINDOW)) or 0
    if recent >= LINKS_PER_ADDRESS:
        return None
    token = secrets.token_urlsafe(32)
    session.add(SignInLink(token_hash=token_hash(token), worker_id=worker.id, created_at=now))
    session.add(AuditEntry(ticket_id=None, at=now, actor=SIGN_IN_ACTOR, action="sign_in_link",
                           detail=f"{worker.email} from {client[:64]}"))
    return token


def count_link_request(session: Session, client: str, now: datetime) -> None:
    """A request for a mailed link counts towards the client's throttle, known address or not; SignInThrottled
    once the client has asked too often."""
    wait = throttle_wait(session, "", client, now)
    if wait:
        raise SignInThrottled(wait)
    session.add(SignInFailure(email="", client=client[:64], at=now))


def sign_in_with_link(session: Session, token: str, client: str, now: datetime) -> SignedIn:
    """A session for a link used once, within LINK_LIFETIME; SignInRefused otherwise."""
    row = session.execute(select(SignInLink, Worker).join(Worker, Worker.id == SignInLink.worker_id)
                          .where(SignInLink.token_hash == token_hash(token))).first()
    if row is None or row[0].used_at is not None or now - row[0].created_at > LINK_LIFETIME:
        raise SignInRefused("this sign-in link is unknown, used already or expired: ask for a new one")
    link, worker = row
    link.used_at = now
    return _open_session(session, worker, client, now, "by a mailed link")


def _password_matches(worker: Worker, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    if not worker.password_hash:
        _hasher().hash(password)  # as long as a real check: timing tells no one the worker has no password
        return False
    try:
        return bool(_hasher().verify(worker.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def throttle_wait(session: Session, email: str, client: str, now: datetime) -> int:
    """Seconds until the next try is allowed for this address and client; 0 when it is now."""
    since = now - THROTTLE_WINDOW
    waits = []
    for column, value, limit in ((SignInFailure.email, email, FAILURES_PER_ADDRESS),
                                 (SignInFailure.client, client, FAILURES_PER_CLIENT)):
        if not value:
            continue
        recent = list(session.scalars(select(SignInFailure.at).where(column == value, SignInFailure.at > since)
                                      .order_by(SignInFailure.at.desc()).limit(limit)))
        if len(recent) >= limit:
            waits.append(max(math.ceil((recent[-1] + THROTTLE_WINDOW - now).total_seconds()), 1))
    return max(waits, default=0)


def live_session(session: Session, token: str, now: datetime, *, idle: timedelta, absolute: timedelta,
                 write: bool = True) -> tuple[SessionView | None, bool]:
    """The session a cookie names if it is still live, and whether a write is due.

    With `write`, an expired session is ended and the last use recorded. Without, nothing is
    changed, and the flag says whether a writing call should follow: the session expired, or its
    last use is older than TOUCH_EVERY. Most requests so read only: a page costs no write lock.
    """
    row = session.execute(select(WebSession, Worker).join(Worker, Worker.id == WebSession.worker_id)
                          .where(WebSession.token_hash == token_hash(token), WebSession.ended_at.is_(None))).first()
    if row is None:
        return None, False
    web, worker = row
    live, write_due = still_live(web, now, idle=idle, absolute=absolute, write=write)
    if not live:
        return None, write_due
    return SessionView(worker.email, worker.name, web.csrf_token, web.created_at, web.last_seen_at), write_due


class SessionRow(Protocol):
    """A signed-in session as stored: a worker's (WebSession) or a customer's (CustomerSession)."""

    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None


def still_live(row: SessionRow, now: datetime, *, idle: timedelta, absolute: timedelta,
               write: bool) -> tuple[bool, bool]:
    """Whether the session is live, and whether a writing call should follow (see live_session).

    With `write`, an expired session is ended here and a live one's last use recorded."""
    if now - row.last_seen_at > idle or now - row.created_at > absolute:
        if write:
            row.ended_at = now
        return False, not write
    if write:
        row.last_seen_at = now
    return True, not write and now - row.last_seen_at > TOUCH_EVERY


def sign_out(session: Session, token: str, now: datetime) -> None:
    session.execute(update(WebSession).where(WebSession.token_hash == token_hash(token), WebSession.ended_at.is_(None))
                    .values(ended_at=now))


def end_sessions(session: Session, email: str, now: datetime) -> int:
    """End every live session of the worker (`postdesk worker sessions EMAIL --revoke`, a new password)."""
    worker = _worker(session, email)
    ended = session.execute(update(WebSession).where(WebSession.worker_id == worker.id,
                                                     WebSession.ended_at.is_(None)).values(ended_at=now)
                            .returning(WebSession.id))
    return len(list(ended))


def sessions_of(session: Session, email: str) -> list[SessionView]:
    """The worker's live sessions (ended ones are history), newest first."""
    worker = _worker(session, email)
    rows = session.scalars(select(WebSession).where(WebSession.worker_id == worker.id, WebSession.ended_at.is_(None))
                           .order_by(WebSession.created_at.desc()))
    return [SessionView(worker.email, worker.name, "", r.created_at, r.last_seen_at) for r in rows]


def new_api_token(session: Session, email: str, name: str, now: datetime) -> str:
    """A token for scripts, returned once: only its hash is kept."""
    worker = _worker(session, email)
    token = "pd_" + secrets.token_urlsafe(32)
    session.add(ApiToken(token_hash=token_hash(token), worker_id=worker.id, name=name[:100], created_at=now))
    return token


def api_token_worker(session: Session, token: str) -> str | None:
    """The address of the worker a live API token belongs to, or None."""
    return session.scalar(select(Worker.email).join(ApiToken, ApiToken.worker_id == Worker.id)
                          .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None)))


def revoke_api_tokens(session: Session, email: str, now: datetime) -> int:
    worker = _worker(session, email)
    revoked = session.execute(update(ApiToken).where(ApiToken.worker_id == worker.id, ApiToken.revoked_at.is_(None))
                              .values(revoked_at=now).returning(ApiToken.id))
    return len(list(revoked))


def _worker(session: Session, email: str) -> Worker:
    worker = session.scalars(select(Worker).where(Worker.email == email.strip().lower())).first()
    if worker is None:
        raise NotFound(f"no worker with address {email}")
    return worker
