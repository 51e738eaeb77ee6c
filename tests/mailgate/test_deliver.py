"""`postdesk deliver`: one message on stdin, the exit codes an MTA pipe expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text

from core.db import Database
from core.models import Message, QuarantineItem, SpoolItem
from testkit import json_in_process, make_mail, run_cli, run_in_process
from workers.cli import main


def rows(database: Database, model: type) -> int:
    with database.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_deliver_files_a_ticket_and_exits_0(database: Database, config_path: Path) -> None:
    result = run_cli(config_path, "deliver", "--from", "alice@customer.test", "--to", "support@example.com",
                     stdin=make_mail(subject="from the pipe").as_bytes())  # a whole process, as the MTA runs it
    assert result.returncode == 0, result.stderr
    assert json_in_process(config_path, "tickets")[0]["subject"] == "from the pipe"


def test_deliver_quarantines_garbage_and_still_exits_0(database: Database, config_path: Path) -> None:
    result = run_in_process(config_path, "deliver", stdin=b"\n\nthis is not a mail\n")
    assert result.returncode == 0
    assert rows(database, QuarantineItem) == 1 and rows(database, Message) == 0


def test_deliver_exits_75_when_storage_fails(database: Database, config_path: Path) -> None:
    with database.engine.begin() as conn:
        if database.is_sqlite:
            conn.execute(text("CREATE TRIGGER refuse_spool BEFORE INSERT ON spool "
                              "BEGIN SELECT RAISE(ABORT, 'storage failure for the test'); END"))
        else:
            conn.execute(text("ALTER TABLE spool ADD CONSTRAINT refuse_spool CHECK (false) NOT VALID"))
    result = run_in_process(config_path, "deliver", stdin=make_mail().as_bytes())
    assert result.returncode == 75
    assert b"temporary failure" in result.stderr and b"Traceback" not in result.stderr
    assert rows(database, SpoolItem) == 0 and rows(database, Message) == 0


def test_deliver_refuses_oversize_with_one_line(database: Database, config_path: Path) -> None:
    oversize = make_mail(body="x" * 70 + ("\n" + "y" * 70) * 20000).as_bytes()
    result = run_in_process(config_path, "deliver", stdin=oversize)
    assert result.returncode == 1
    assert result.stderr.decode().strip().startswith("postdesk: message of ")
    assert rows(database, SpoolItem) + rows(database, Message) == 0


def in_process(config: Path, *args: str, stdin: bytes | None = None) -> Result:
    """The real command through click's runner, without a process start each."""
    result = CliRunner().invoke(main, ["--config", str(config), *args], input=stdin, prog_name="postdesk")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


@pytest.mark.parametrize("mail_from, acknowledged", [("alice@customer.test", True), ("", False), ("<>", False)])
def test_deliver_from_the_null_path_files_the_mail_but_answers_nothing(database: Database, config_path: Path,
                                                                       mail_from: str, acknowledged: bool) -> None:
    mail = make_mail(subject="undeliverable, or a customer", sender="Alice <alice@customer.test>")
    delivered = in_process(config_path, "deliver", "--from", mail_from, "--to", "support@example.com",
                           stdin=mail.as_bytes())
    assert delivered.exit_code == 0, delivered.stderr
    tickets = json.loads(in_process(config_path, "tickets", "--json").stdout)
    assert [t["subject"] for t in tickets] == ["undeliverable, or a customer"]
    queued = json.loads(in_process(config_path, "outbox", "--json").stdout)
    assert any(item["purpose"] == "auto_reply" for item in queued) is acknowledged
