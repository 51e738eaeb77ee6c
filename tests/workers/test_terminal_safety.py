"""A stranger's mail cannot command the worker's terminal: `show`, `tickets` and `search` print the
control characters in a subject, name, body or file name as nothing, and keep the text around them.

Tickets are filed through the real pipeline into a real database; the commands run in-process
through click's runner (piped), and once as a whole process on a pseudo-terminal (coloured, rich).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.db import Database
from core.inbound import Envelope
from core.models import Ticket
from core.settings import Settings
from mailgate.deliver import deliver
from testkit import ROOT
from workers.cli import main
from workers.terminal_text import printable

# Erase screen, cursor up, retitle, write the clipboard (OSC 52), a raw C1 CSI, a lone CR, a bidi
# override, and rich markup that would colour text or make a hyperlink.
EVIL = ("\x1b[2J\x1b[1A\x1b]0;pwned\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x9b2K\rR\u202eL"
        "[red]x[/red][link=https://evil.test]y[/link]")
OBEYED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # the colours postdesk itself adds on a terminal


def _words(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def _raw_mail(sender: str, address: str, subject: str, body: str, filename: str, number: int) -> bytes:
    """A mail as a hostile client writes it: controls in encoded words, a base64 body and an RFC 2231 file name."""
    return "\r\n".join([
        f"From: {_words(sender)} <{address}>", "To: support@example.com", f"Subject: {_words(subject)}",
        "Date: Fri, 20 Nov 2026 09:30:00 +0000", f"Message-ID: <evil{number}@elsewhere.test>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"', "", "--b", "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64", "", base64.b64encode(body.encode()).decode(), "--b",
        "Content-Type: application/pdf",
        f"Content-Disposition: attachment; filename*=utf-8''{quote(filename)}",
        "Content-Transfer-Encoding: base64", "", "JVBERg==", "--b--", ""]).encode()


@pytest.fixture
def evil_ticket(database: Database, settings: Settings) -> str:
    """A ticket opened by a hostile mail, then answered by a stranger (so flagged unverified), controls everywhere.

    The second claims the first's sender and quotes the mask: kept on the ticket, flagged (nothing proves it).
    """
    envelope = Envelope("deliver", "", ("support@example.com",))
    deliver(database, settings, _raw_mail(f"Mal {EVIL} lory", "mallory@elsewhere.test", f"Invoice {EVIL} overdue",
                                          f"Dear {EVIL} customer\nsecond line", f"bill{EVIL}.pdf", 1), envelope)
    with database.read() as session:
        mask = session.scalars(select(Ticket.mask)).one()
    deliver(database, settings, _raw_mail(f"Eve {EVIL} Stranger", "mallory@elsewhere.test", f"Re: [{mask}] {EVIL}",
                                          f"Pay {EVIL} me instead", f"iban{EVIL}.pdf", 2), envelope)
    return mask


def _run(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), *args], prog_name="postdesk")
    assert result.exit_code == 0, result.output
    return result.stdout


def _assert_obeys_nothing(out: str) -> None:
    assert SGR.sub("", out).count("\x1b") == 0
    assert not OBEYED.findall(SGR.sub("", out).replace("\n", "").replace("\t", ""))


def test_printable_strips_controls_and_keeps_the_text() -> None:
    controls = "".join(chr(c) for c in [*range(0x20), 0x7f, *range(0x80, 0xa0)] if chr(c) not in "\t\n")
    assert printable(f"a\tb\nc{controls}d") == "a\tb\ncd"
    assert printable("x\u202ay\u202ez\u2066w\u2069v") == "xyzwv"
    assert printable("Grüße, 東京 👍 \u200dé [red]") == "Grüße, 東京 👍 \u200dé [red]"


@pytest.mark.sqlite_only
def test_show_piped_strips_the_mails_controls(evil_ticket: str, config_path: Path) -> None:
    out = _run(config_path, "show", evil_ticket, "--history")
    _assert_obeys_nothing(out)
    assert f"Invoice [2J[1A]0;pwned]52;c;ZWNobyBwd25lZA==2K RL[red]x[/red]" in out  # CR unfolded to a space
    assert "Dear [2J[1A]0;pwned" in out and "customer\n  second line" in out and "Pay " in out
    assert "attachment 1: bill[2J" in out and "attachment 2: iban[2J" in out
    assert "mallory@elsewhere.test  2026-11-20 09:30  [unverified sender]" in out


@pytest.mark.sqlite_only
def test_tickets_and_search_piped_strip_the_mails_controls(evil_ticket: str, config_path: Path) -> None:
    for out in (_run(config_path, "tickets"), _run(config_path, "search", "invoice", "overdue")):
        _assert_obeys_nothing(out)
        row = out.splitlines()[1].split("\t")
        assert row[0] == evil_ticket and row[1].startswith("Invoice [2J") and row[1].endswith("y[/link] overdue")


@pytest.mark.sqlite_only
def test_json_escapes_the_c0_controls(evil_ticket: str, config_path: Path) -> None:
    out = _run(config_path, "show", evil_ticket, "--json")
    assert not re.findall("[\x00-\x09\x0b-\x1f]", out)
    assert "\x1b]52;c;" in json.loads(out)["subject"], "the value itself is kept whole for scripts"


@pytest.mark.sqlite_only
def test_json_escapes_c1_and_bidi_controls(evil_ticket: str, config_path: Path) -> None:
    assert not OBEYED.findall(_run(config_path, "show", evil_ticket, "--json").replace("\n", ""))


def _on_a_terminal(config: Path, *args: str) -> str:
    """What postdesk shows when run with a pseudo-terminal as stdin, stdout and stderr."""
    controller, terminal = os.openpty()
    env = {**os.environ, "LINES": "60", "COLUMNS": "400", "TERM": "xterm-256color"}
    try:
        process = subprocess.run([sys.executable, "-m", "workers", "--config", str(config), *args],
                                 stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT, env=env, timeout=120)
        os.set_blocking(controller, False)
        shown = b""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(controller, 65536):
                shown += chunk
        assert process.returncode == 0, shown
        return shown.decode().replace("\r\n", "\n")  # the terminal itself turns each newline into CR LF
    finally:
        os.close(terminal)
        os.close(controller)


@pytest.mark.sqlite_only
def test_on_a_terminal_only_postdesks_colours_reach_it(evil_ticket: str, config_path: Path) -> None:
    shown = _on_a_terminal(config_path, "show", evil_ticket)
    assert SGR.search(shown), "show is coloured on a terminal"
    _assert_obeys_nothing(shown)
    assert re.search(r"mallory@elsewhere\.test  2026-11-20 09:30  \[unverified sender\]\x1b\[0m", shown)
    table = _on_a_terminal(config_path, "tickets")
    _assert_obeys_nothing(table)
    assert "[red]x[/red][link=https://evil.test]y[/link]" in SGR.sub("", table), "rich read the subject as markup"
