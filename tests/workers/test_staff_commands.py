"""`postdesk worker` and `postdesk group` on a real database, run in process (a refusal also as a whole process)."""

from __future__ import annotations

import pytest

from pathlib import Path

from testkit import json_in_process, run_cli, run_in_process


def ok(config: Path, *args: str) -> str:
    result = run_in_process(config, *args)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_groups_and_workers_round_trip(config_path: Path) -> None:
    ok(config_path, "group", "add", "Billing", "--address", "Billing@Example.com", "--no-auto-reply", "--close-notice")
    ok(config_path, "worker", "add", "Jane@Corp.test", "--name", "Jane Doe", "--group", "Billing", "--group", "support")
    groups = {g["name"]: g for g in json_in_process(config_path, "group", "list")}
    assert groups["Billing"] == {"name": "Billing", "address": "billing@example.com", "auto_reply": False,
                                 "close_notice": True, "members": ["jane@corp.test"],
                                 "auto_close_days": None, "language": "", "transcripts": False,
                                 "transcript_address": ""}
    assert groups["Support"]["members"] == ["jane@corp.test"] and groups["Support"]["auto_reply"] is True
    assert json_in_process(config_path, "worker", "list") == [
        {"email": "jane@corp.test", "name": "Jane Doe", "groups": ["Billing", "Support"]}]
    ok(config_path, "worker", "remove", "jane@corp.test")
    assert json_in_process(config_path, "worker", "list") == []
    ok(config_path, "group", "remove", "billing")
    assert [g["name"] for g in json_in_process(config_path, "group", "list")] == ["Support"]


@pytest.mark.sqlite_only
def test_errors_are_one_line_and_change_nothing(config_path: Path) -> None:
    ok(config_path, "worker", "add", "jane@corp.test", "--name", "Jane")
    cases = [
        (("worker", "add", "jane@corp.test", "--name", "Again"), "postdesk: worker jane@corp.test exists already"),
        (("worker", "add", "not-an-address", "--name", "X"), "postdesk: not a mail address: 'not-an-address'"),
        (("worker", "add", "bob@corp.test", "--name", "Bob", "--group", "Nope"), "postdesk: no group named 'Nope'"),
        (("worker", "add", "support@example.com", "--name", "X"),
         "postdesk: support@example.com is a group's address, not a person's"),
        (("worker", "remove", "ghost@corp.test"), "postdesk: no worker with address ghost@corp.test"),
        (("group", "add", "Support", "--address", "other@example.com"),
         "postdesk: a group named 'Support' or at other@example.com exists already"),
    ]
    for number, (args, line) in enumerate(cases):
        run = run_cli if number == 0 else run_in_process  # the first as a whole process too
        result = run(config_path, *args)
        assert result.returncode == 1 and result.stderr.decode().strip().splitlines() == [line], args
    assert [w["email"] for w in json_in_process(config_path, "worker", "list")] == ["jane@corp.test"]
    assert run_in_process(config_path, "worker", "add", "x@y.test").returncode == 2  # --name is required
