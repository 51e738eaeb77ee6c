"""`postdesk deliver`: one message on stdin, the exit codes an MTA pipe expects."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select, text

from core.db import Database
from core.models import Message, QuarantineItem, SpoolItem
from testkit import cli_json, make_mail, run_cli


def rows(database: Database, model: type) -> int:
    with database.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_deliver_files_a_ticket_and_exits_0(database: Database, config_path: Path) -> None:
    result = run_cli(config_path, "deliver", "--from", "alice@customer.test", "--to", "support@example.com",
                     stdin=make_mail(subject="from the pipe").as_bytes())
    assert result.returncode == 0, result.stderr
    assert cli_json(config_path, "tickets")[0]["subject"] == "from the pipe"


def test_deliver_quarantines_garbage_and_still_exits_0(database: Database, config_path: Path) -> None:
    result = run_cli(config_path, "deliver", stdin=b"\n\nthis is not a mail\n")
    assert result.returncode == 0
    assert rows(database, QuarantineItem) == 1 and rows(database, Message) == 0


def test_deliver_exits_75_when_storage_fails(database: Database, config_path: Path) -> None:
    with database.engine.begin() as conn:
        if database.is_sqlite:
            conn.execute(text("CREATE TRIGGER refuse_spool BEFORE INSERT ON spool "
                              "BEGIN SELECT RAISE(ABORT, 'storage failure for the test'); END"))
        else:
            conn.execute(text("ALTER TABLE spool ADD CONSTRAINT refuse_spool CHECK (false) NOT VALID"))
    result = run_cli(config_path, "deliver", stdin=make_mail().as_bytes())
    assert result.returncode == 75
    assert b"temporary failure" in result.stderr and b"Traceback" not in result.stderr
    assert rows(database, SpoolItem) == 0 and rows(database, Message) == 0


def test_deliver_refuses_oversize_with_one_line(database: Database, config_path: Path) -> None:
    result = run_cli(config_path, "deliver", stdin=make_mail(body="x" * 70 + ("\n" + "y" * 70) * 20000).as_bytes())
    assert result.returncode == 1
    assert result.stderr.decode().strip().startswith("postdesk: message of ")
    assert rows(database, SpoolItem) + rows(database, Message) == 0
