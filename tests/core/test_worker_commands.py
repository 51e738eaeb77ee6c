"""Worker mail commands and the cleaning of a worker's text before relaying."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.models import Priority
from core.reply_text import REDACTED, clean_worker_text
from core.worker_commands import parse_commands, parse_due

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
ME = "jane@corp.test"


def test_commands_at_the_top_are_read_and_removed() -> None:
    parsed = parse_commands("#waiting 3d\n#priority high\n\n#owner me\nHello Alice,\n#not a command here", ME, NOW)
    assert parsed.waiting_until == NOW + timedelta(days=3)
    assert parsed.priority is Priority.HIGH and parsed.owner == ME
    assert parsed.body == "Hello Alice,\n#not a command here"
    assert parsed.problems == ()


@pytest.mark.parametrize("line, field, value", [
    ("#comment", "comment", True), ("#close", "close", True), ("#reopen", "reopen", True), ("#spam", "spam", True),
    ("#owner Bob@Corp.test", "owner", "bob@corp.test"),
    ("#waiting 2026-12-01 09:00", "waiting_until", datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)),
])
def test_each_command(line: str, field: str, value: object) -> None:
    assert getattr(parse_commands(f"{line}\ntext", ME, NOW), field) == value


@pytest.mark.parametrize("line", ["#frobnicate", "#priority extreme", "#waiting soon", "#owner not-an-address",
                                  "#close now"])
def test_unknown_or_malformed_commands_are_problems(line: str) -> None:
    parsed = parse_commands(f"{line}\nHello", ME, NOW)
    assert len(parsed.problems) == 1 and parsed.body == "Hello"


def test_parse_due_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        parse_due("tomorrow-ish", NOW)


def test_quoted_history_attribution_and_signature_are_cut() -> None:
    text = ("Hi Alice,\n\nthe printer is fixed.\n\nJane\n-- \nJane Doe | jane@corp.test | +1 555\n"
            "On Tue, Nov 24, 2026, Alice via Support <support@example.com> wrote:\n> help")
    assert clean_worker_text(text, [ME]) == "Hi Alice,\n\nthe printer is fixed.\n\nJane"


def test_attribution_naming_the_worker_is_cut_before_the_quote() -> None:
    text = "Done.\n\nOn 24 Nov 2026, Jane Doe <JANE@corp.test> wrote:\n> > old"
    assert clean_worker_text(text, [ME]) == "Done."


def test_an_address_left_in_the_text_is_redacted() -> None:
    assert clean_worker_text("write to jane@CORP.test directly", [ME]) == f"write to {REDACTED} directly"
