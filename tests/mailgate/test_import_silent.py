"""`postdesk import` is a migration: old mail is filed without writing to anyone, unless --notify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.db import Database
from core.settings import Settings
from testkit import make_mail
from workers.cli import main


def run(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), *args], prog_name="postdesk")
    assert result.exit_code == 0, (result.output, result.exc_info)
    return result.stdout


def mbox(path: Path, senders: list[str]) -> Path:
    parts = []
    for number, sender in enumerate(senders):
        mail = make_mail(sender=sender, subject=f"old case {number}", body=f"Case {number}, from 2019.")
        mail["Return-Path"] = f"<{sender}>"
        parts.append(f"From {sender} Mon Jan  7 10:00:00 2019\n".encode() + mail.as_bytes().replace(b"\r\n", b"\n"))
    path.write_bytes(b"\n".join(parts))
    return path


@pytest.mark.sqlite_only
def test_import_files_silently_and_notify_asks_for_mail(database: Database, settings: Settings, config_path: Path,
                                                        tmp_path: Path) -> None:
    run(config_path, "worker", "add", "jane@corp.test", "--name", "Jane", "--group", "Support")
    out = run(config_path, "import", str(mbox(tmp_path / "old.mbox", ["a@old.test", "b@old.test"])))
    assert "filed 2" in out
    assert json.loads(run(config_path, "outbox", "--state", "all", "--json")) == []
    assert len(json.loads(run(config_path, "tickets", "--json"))) == 2

    run(config_path, "import", "--notify", str(mbox(tmp_path / "new.mbox", ["c@new.test"])))
    queued = json.loads(run(config_path, "outbox", "--json"))
    assert sorted((i["purpose"], i["recipients"][0]) for i in queued) == [
        ("auto_reply", "c@new.test"), ("notification", "jane@corp.test")]
