"""`postdesk deliver` tells the MTA "try again later" (75) for every failure that may pass (issue 11, item 9).

Any other non-zero status makes Postfix or Exim bounce the customer's mail.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from core.db import Database
from core.models import Message, SpoolItem
from mailgate.deliver import EX_TEMPFAIL
from testkit import free_port, make_mail, run_cli, write_config
from workers.cli import main

TEMPORARY = "postdesk: temporary failure, message not stored: "


def in_process(config: Path, *args: str, stdin: bytes = b"") -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args], input=stdin, prog_name="postdesk")


def test_postgresql_unreachable_is_75_with_one_line(tmp_path: Path) -> None:
    """A real process, as the MTA runs it; nothing listens on the port."""
    config = write_config(tmp_path, f"postgresql+psycopg://postdesk@127.0.0.1:{free_port()}/postdesk")
    result = run_cli(config, "deliver", "--from", "alice@customer.test", "--to", "support@example.com",
                     stdin=make_mail().as_bytes())
    assert result.returncode == EX_TEMPFAIL
    (line,) = result.stderr.decode().splitlines()
    assert line.startswith(TEMPORARY) and "Connection refused" in line


@pytest.mark.sqlite_only
def test_a_locked_sqlite_database_is_75(database: Database, config_path: Path) -> None:
    text = config_path.read_text()
    config_path.write_text(text.replace("[database]\n", "[database]\nbusy_timeout_seconds = 0.3\n", 1))
    holder = database.engine.raw_connection()
    try:
        holder.cursor().execute("BEGIN IMMEDIATE")  # another writer, in the middle of its transaction
        result = in_process(config_path, "deliver", "--to", "support@example.com", stdin=make_mail().as_bytes())
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == EX_TEMPFAIL, result.output
    assert result.stderr.splitlines() == [f"{TEMPORARY}database write failed: OperationalError('database is locked')"]
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(SpoolItem)) == 0
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_settings_being_fixed_are_75_not_a_bounce(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    config.write_text(config.read_text().replace("[smtp]\n", "[smtp]\nlisten_typo = 1\n", 1))
    result = in_process(config, "deliver", stdin=make_mail().as_bytes())
    assert result.exit_code == EX_TEMPFAIL
    (line,) = result.stderr.splitlines()
    assert line.startswith(TEMPORARY) and "smtp.listen_typo" in line


def test_bad_arguments_are_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    result = in_process(config, "deliver", "--sender", "alice@customer.test", stdin=make_mail().as_bytes())
    assert result.exit_code == 2 and "No such option" in result.stderr
