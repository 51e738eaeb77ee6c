"""`postdesk worker passwd|sessions|token`: a worker's web identity from the terminal (issue 14, sign-in)."""

from __future__ import annotations

from pathlib import Path

from core.db import Database
from core.desk import Helpdesk
from core.settings import Settings
from testkit import json_in_process, run_in_process


def test_a_password_from_stdin_signs_in_and_revoking_or_changing_it_ends_the_sessions(
        config_path: Path, settings: Settings, database: Database) -> None:
    assert run_in_process(config_path, "worker", "add", "jane@corp.test", "--name", "Jane").returncode == 0
    short = run_in_process(config_path, "worker", "passwd", "jane@corp.test", stdin=b"short\n")
    assert short.returncode == 1 and b"a password has 10 to 1024 characters" in short.stderr
    done = run_in_process(config_path, "worker", "passwd", "jane@corp.test", stdin=b"correct horse battery\n")
    assert done.returncode == 0 and done.stdout == b"password set for jane@corp.test\n"
    desk = Helpdesk(settings, database)
    tokens = [desk.sign_in("jane@corp.test", "correct horse battery", "c").token for _ in range(2)]
    assert len(json_in_process(config_path, "worker", "sessions", "jane@corp.test")) == 2
    revoked = run_in_process(config_path, "worker", "sessions", "jane@corp.test", "--revoke")
    assert revoked.stdout == b"jane@corp.test: 2 sessions ended\n" and [desk.session(t) for t in tokens] == [None] * 2
    again = desk.sign_in("jane@corp.test", "correct horse battery", "c").token
    changed = run_in_process(config_path, "worker", "passwd", "jane@corp.test", stdin=b"another good passphrase\n")
    assert changed.stdout == b"password set for jane@corp.test; 1 session ended\n" and desk.session(again) is None
    unknown = run_in_process(config_path, "worker", "passwd", "nobody@corp.test", stdin=b"correct horse battery\n")
    assert unknown.returncode == 1 and b"no worker with address nobody@corp.test" in unknown.stderr


def test_an_api_token_is_printed_once_and_revoked(config_path: Path, settings: Settings, database: Database) -> None:
    run_in_process(config_path, "worker", "add", "jane@corp.test", "--name", "Jane")
    made = run_in_process(config_path, "worker", "token", "jane@corp.test", "--name", "report")
    token = made.stdout.decode().strip()
    assert made.returncode == 0 and token.startswith("pd_") and len(token) > 40
    desk = Helpdesk(settings, database)
    assert desk.api_worker(token) == "jane@corp.test"
    assert run_in_process(config_path, "worker", "token", "jane@corp.test", "--revoke").stdout == (
        b"jane@corp.test: 1 token revoked\n")
    assert desk.api_worker(token) is None
