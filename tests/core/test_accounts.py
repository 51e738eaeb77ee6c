"""Workers' web identities (core.accounts through Helpdesk): argon2id passwords, sessions, throttling, API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from core.accounts import FAILURES_PER_ADDRESS, FAILURES_PER_CLIENT, SignInRefused, SignInThrottled, token_hash
from core.db import Database
from core.desk import Helpdesk
from core.errors import UsageError
from core.models import ApiToken, AuditEntry, WebSession, Worker
from core.settings import Settings
from testkit import Clock

START = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


@pytest.fixture
def desk(settings: Settings, database: Database, clock: Clock) -> Helpdesk:
    desk = Helpdesk(settings, database, clock=clock)
    desk.add_worker("jane@corp.test", "Jane")
    desk.set_password("jane@corp.test", PASSWORD)
    return desk


def test_a_password_is_kept_as_argon2id_and_opens_a_session_whose_token_is_not_stored(
        desk: Helpdesk, database: Database) -> None:
    signed = desk.sign_in("Jane@Corp.test", PASSWORD, "10.0.0.1")
    with database.read() as session:
        stored = session.scalars(select(Worker.password_hash)).one()
        rows = session.scalars(select(WebSession.token_hash)).all()
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert rows == [token_hash(signed.token)] and signed.token not in rows
    live = desk.session(signed.token)
    assert live is not None and (live.worker_email, live.csrf_token) == ("jane@corp.test", signed.csrf_token)
    assert desk.session(signed.token + "x") is None


def test_a_wrong_password_and_an_unknown_address_get_one_answer_and_are_audited(desk: Helpdesk,
                                                                                 database: Database) -> None:
    for email, password in (("jane@corp.test", "wrong password!"), ("nobody@corp.test", PASSWORD)):
        with pytest.raises(SignInRefused) as refused:
            desk.sign_in(email, password, "10.0.0.1")
        assert str(refused.value) == "wrong address or password"
    with database.read() as session:
        assert [e.detail for e in session.scalars(select(AuditEntry).where(AuditEntry.action == "sign_in_failed")
                                                  .order_by(AuditEntry.id))] == [
            "jane@corp.test from 10.0.0.1", "nobody@corp.test from 10.0.0.1"]
        assert session.scalars(select(WebSession)).all() == []


def test_guessing_is_throttled_per_address_and_per_client_even_for_the_right_password(desk: Helpdesk,
                                                                                       clock: Clock) -> None:
    for attempt in range(FAILURES_PER_ADDRESS):
        with pytest.raises(SignInRefused):
            desk.sign_in("jane@corp.test", f"guess number {attempt}", f"10.0.0.{attempt}")
    with pytest.raises(SignInThrottled) as throttled:
        desk.sign_in("jane@corp.test", PASSWORD, "10.9.9.9")
    assert 0 < throttled.value.retry_after <= 15 * 60
    clock.now += timedelta(seconds=throttled.value.retry_after)
    assert desk.sign_in("jane@corp.test", PASSWORD, "10.9.9.9").worker_email == "jane@corp.test"
    for attempt in range(FAILURES_PER_CLIENT):
        with pytest.raises(SignInRefused):
            desk.sign_in(f"someone{attempt}@corp.test", "whatever it is", "10.6.6.6")
    with pytest.raises(SignInThrottled):
        desk.sign_in("jane@corp.test", PASSWORD, "10.6.6.6")


def test_a_session_ends_when_idle_too_long_after_its_hours_by_sign_out_password_change_or_revoke(
        desk: Helpdesk, settings: Settings, clock: Clock) -> None:
    idle = timedelta(minutes=settings.web.session_idle_minutes)
    first = desk.sign_in("jane@corp.test", PASSWORD, "c").token
    clock.now += idle + timedelta(seconds=1)
    assert desk.session(first) is None
    kept, opened = desk.sign_in("jane@corp.test", PASSWORD, "c").token, clock.now
    lifetime = timedelta(hours=settings.web.session_hours)
    while clock.now + idle / 2 - opened <= lifetime:
        clock.now += idle / 2
        assert desk.session(kept) is not None  # used every half idle time: alive
    clock.now += idle / 2
    assert desk.session(kept) is None  # used all along, but its absolute lifetime is over
    out = desk.sign_in("jane@corp.test", PASSWORD, "c").token
    desk.sign_out(out)
    assert desk.session(out) is None
    tokens = [desk.sign_in("jane@corp.test", PASSWORD, "c").token for _ in range(2)]
    assert len(desk.sessions("jane@corp.test")) == 2
    assert desk.revoke_sessions("jane@corp.test") == 2 and [desk.session(t) for t in tokens] == [None, None]
    again = desk.sign_in("jane@corp.test", PASSWORD, "c").token
    assert desk.set_password("jane@corp.test", "another good passphrase") == 1 and desk.session(again) is None
    with pytest.raises(UsageError):
        desk.set_password("jane@corp.test", "short")


def test_an_api_token_is_shown_once_stored_as_a_hash_and_revocable(desk: Helpdesk, database: Database) -> None:
    token = desk.new_api_token("jane@corp.test", "report")
    with database.read() as session:
        assert session.scalars(select(ApiToken.token_hash)).all() == [token_hash(token)]
    assert desk.api_worker(token) == "jane@corp.test" and desk.api_worker(token[:-1]) is None
    assert desk.revoke_api_tokens("jane@corp.test") == 1 and desk.api_worker(token) is None


def test_removing_a_worker_ends_their_sessions(desk: Helpdesk) -> None:
    token = desk.sign_in("jane@corp.test", PASSWORD, "c").token
    desk.remove_worker("jane@corp.test")
    assert desk.session(token) is None
