"""What a newcomer tripped on (issue 13): a wrong log level, cut masks, escapes in less, a group no mail reaches.

Each is run as the worker meets it: the `postdesk` command in process, or as a whole process on a
pseudo-terminal where the terminal itself is what matters (table width, the pager).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Database
from core.errors import ConfigError
from core.inbound import Envelope
from core.models import Ticket
from core.settings import Settings, load_settings
from mailgate.deliver import deliver
from testkit import ROOT, json_in_process, make_mail, run_in_process, write_config
from workers.output import table_for_people

LONG_SUBJECT = "A rather long subject that any narrow table would have to cut or wrap somewhere"


def file_mail(database: Database, settings: Settings, **kwargs: object) -> str:
    """File one mail as the MTA pipe would; the new ticket's mask."""
    mail = make_mail(**kwargs)  # type: ignore[arg-type]
    deliver(database, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))
    with database.read() as session:
        return str(session.scalars(select(Ticket.mask).order_by(Ticket.id.desc())).first())


def on_a_terminal(config: Path, env: dict[str, str], *args: str) -> str:
    """What `postdesk` shows when a pseudo-terminal is its stdin, stdout and stderr (it must exit 0)."""
    controller, terminal = os.openpty()
    try:
        process = subprocess.run([sys.executable, "-m", "workers", "--config", str(config), *args],
                                 stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT, env=env, timeout=120)
        os.set_blocking(controller, False)
        shown = b""
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(controller, 65536):
                shown += chunk
        assert process.returncode == 0, shown
        return shown.decode(errors="replace").replace("\r\n", "\n")
    finally:
        os.close(terminal)
        os.close(controller)


def terminal_env(columns: int, **more: str) -> dict[str, str]:
    """This environment as a worker's terminal of that width; no pager or colour settings of the machine's."""
    env = {k: v for k, v in os.environ.items() if k not in ("LESS", "PAGER", "NO_COLOR")}
    return {**env, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color", **more}


# a. logging.level

@pytest.mark.parametrize("command", [("tickets",), ("serve",)])
def test_an_unknown_log_level_is_one_line_naming_the_setting(tmp_path: Path, command: tuple[str, ...]) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    config.write_text(config.read_text().replace('level = "INFO"', 'level = "LOUD"'))
    result = run_in_process(config, *command)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "postdesk: setting logging.level: unknown level 'LOUD': use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"]
    assert not (tmp_path / "postdesk.db").exists(), "refused at load, before anything was opened"


@pytest.mark.parametrize("written", ["debug", "Warning", " error "])
def test_a_known_log_level_is_taken_in_any_case(tmp_path: Path, written: str) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    config.write_text(config.read_text().replace('level = "INFO"', f'level = "{written}"'))
    assert load_settings(config).logging.level == written.strip().upper()


@pytest.mark.parametrize("written", ["NOTSET", "", "5", "WARN "])
def test_what_is_no_level_of_ours_is_refused(tmp_path: Path, written: str) -> None:
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}")
    config.write_text(config.read_text().replace('level = "INFO"', f'level = "{written}"'))
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert refused.value.key == "logging.level"


# b. tables keep the mask whole; no escapes where no terminal shows them

@pytest.mark.parametrize("width", [30, 60, 80, 100])
def test_the_first_column_of_a_table_is_never_cut_nor_wrapped(width: int) -> None:
    from rich.console import Console

    masks = ["IWH-52817-384", "IWH-52-1", "KQZ-99999-999999"]
    rows = [[mask, LONG_SUBJECT, "open", "normal", "jane.doe@corp.example", "1", "2026-11-20 09:30"] for mask in masks]
    screen = io.StringIO()
    Console(width=width, file=screen, color_system=None).print(
        table_for_people(["mask", "subject", "status", "priority", "owner", "messages", "created"], rows))
    shown = screen.getvalue()
    for mask in masks:
        assert re.search(rf"│ {re.escape(mask)} +│", shown), f"{mask} cut or wrapped at {width} columns:\n{shown}"
    assert max(len(line) for line in shown.splitlines()) <= width, "the other columns shrink instead"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("width", [60, 80, 100])
def test_tickets_on_a_narrow_terminal_shows_every_mask_whole(database: Database, settings: Settings,
                                                              config_path: Path, width: int) -> None:
    masks = [file_mail(database, settings, subject=f"{LONG_SUBJECT} {n}") for n in range(3)]
    screen = on_a_terminal(config_path, terminal_env(width), "tickets")
    for mask in masks:
        assert re.search(rf"│ {re.escape(mask)} +│", screen), f"{mask} cut or wrapped at {width} columns:\n{screen}"


@pytest.mark.sqlite_only
def test_piped_tickets_and_show_print_no_escape(database: Database, settings: Settings, config_path: Path) -> None:
    mask = file_mail(database, settings, subject=LONG_SUBJECT, body="\n".join(f"line {n}" for n in range(200)))
    listed = run_in_process(config_path, "tickets")
    shown = run_in_process(config_path, "show", mask, "--history")
    assert listed.returncode == 0 and mask.encode() in listed.stdout and b"\x1b" not in listed.stdout
    assert shown.returncode == 0 and b"line 199" in shown.stdout and b"\x1b" not in shown.stdout


@pytest.fixture
def paged_long_ticket(database: Database, settings: Settings, tmp_path: Path) -> tuple[str, Path, Path]:
    """A ticket taller than the terminal, and a stand-in `less` that keeps what it was given and its $LESS."""
    mask = file_mail(database, settings, subject="long", body="\n".join(f"line {n}" for n in range(200)))
    folder = tmp_path / "bin"
    folder.mkdir()
    kept = tmp_path / "paged.txt"
    less = folder / "less"
    less.write_text(f"#!/bin/sh\n{{ printf 'LESS=%s\\n' \"$LESS\"; cat; }} > '{kept}'\n")
    less.chmod(0o755)
    return mask, less, kept


@pytest.mark.sqlite_only
def test_show_paged_through_less_tells_less_to_show_colour(paged_long_ticket: tuple[str, Path, Path],
                                                           config_path: Path) -> None:
    mask, less, kept = paged_long_ticket
    on_a_terminal(config_path, terminal_env(100, PAGER=str(less)), "show", mask)
    first, paged = kept.read_text().split("\n", 1)
    assert first == "LESS=-R", "less without -R would show ESC[1m as text"
    assert "\x1b[" in paged and "line 199" in paged


@pytest.mark.sqlite_only
def test_show_paged_through_a_less_set_without_raw_mode_gets_no_escapes(paged_long_ticket: tuple[str, Path, Path],
                                                                        config_path: Path) -> None:
    mask, less, kept = paged_long_ticket
    on_a_terminal(config_path, terminal_env(100, PAGER=str(less), LESS="-S"), "show", mask)
    first, paged = kept.read_text().split("\n", 1)
    assert first == "LESS=-S", "the worker's own less settings are kept"
    assert "\x1b" not in paged and paged.startswith(f"{mask}  long") and "line 199" in paged


# c. a group address the gateway would refuse

def groups(config: Path) -> dict[str, str]:
    """Every group's address by name, as `group list --json` reports them."""
    return {g["name"]: g["address"] for g in json_in_process(config, "group", "list")}


@pytest.mark.sqlite_only
def test_group_add_refuses_an_address_outside_the_helpdesk_domains(database: Database, config_path: Path) -> None:
    before = groups(config_path)
    result = run_in_process(config_path, "group", "add", "Billing", "--address", "billing@elsewhere.test")
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        "postdesk: billing@elsewhere.test is not a helpdesk address (domains: example.com): mail to it would be "
        "refused; add its domain to [helpdesk] domains or the address to [helpdesk] addresses"]
    assert groups(config_path) == before


@pytest.mark.sqlite_only
def test_group_edit_refuses_an_address_outside_the_helpdesk_domains(database: Database, config_path: Path) -> None:
    before = groups(config_path)
    result = run_in_process(config_path, "group", "edit", "Support", "--address", "help@Elsewhere.test",
                            "--no-auto-reply")
    assert result.returncode == 1
    assert result.stderr.decode().startswith("postdesk: help@elsewhere.test is not a helpdesk address")
    assert len(result.stderr.decode().splitlines()) == 1
    assert groups(config_path) == before
    assert json_in_process(config_path, "group", "list")[0]["auto_reply"], "nothing of the edit was kept"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("address", ["billing@Example.com", "help@other.test"])
def test_group_add_takes_an_address_the_gateway_accepts(database: Database, config_path: Path, address: str) -> None:
    """At a helpdesk domain, or one of `[helpdesk] addresses` at another domain (write_config lists help@other.test)."""
    result = run_in_process(config_path, "group", "add", "Billing", "--address", address)
    assert result.returncode == 0, result.stderr.decode()
    assert groups(config_path)["Billing"] == address.lower()
