"""`postdesk serve` and its port: port 0 is the system's choice, said in the ready line; a port taken is one line."""

from __future__ import annotations

import re
import smtplib
import socket
from pathlib import Path

from core.settings import load_settings
from testkit import Daemon, make_mail, run_cli, wait_for, write_config

READY = re.compile(rb"^postdesk: listening on (?P<addresses>.+)$", re.MULTILINE)


def listening_on(config: Path, listen: str) -> Path:
    """The settings file, its `smtp.listen` replaced (write_config always picks a port of its own)."""
    configured = load_settings(config).smtp.listen
    config.write_text(config.read_text().replace(f'listen = "{configured}"', f'listen = "{listen}"'))
    assert load_settings(config).smtp.listen == listen
    return config


def ports_in_ready_line(log: Path) -> list[int]:
    ready = READY.search(log.read_bytes())
    assert ready is not None, log.read_text()
    return [int(address.rsplit(b":", 1)[1]) for address in ready["addresses"].split(b", ")]


def test_port_zero_listens_where_the_ready_line_says(tmp_path: Path) -> None:
    config = listening_on(write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}"), "127.0.0.1:0")
    daemon = Daemon(config, tmp_path / "daemon.log").start()
    try:
        (port,) = ports_in_ready_line(daemon.log)
        assert port != 0
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            assert client.sendmail("customer@outside.test", ["support@example.com"],
                                   make_mail(message_id="<by-port@customer.test>").as_bytes()) == {}
        wait_for(lambda: b"mail <by-port@customer.test> outcome=opened" in daemon.log.read_bytes())
    finally:
        assert daemon.stop() == 0


def test_a_port_in_use_ends_in_one_line_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = listening_on(write_config(tmp_path, f"sqlite:///{tmp_path / 'postdesk.db'}"), f"127.0.0.1:{port}")
        result = run_cli(config, "serve")
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"postdesk: setting smtp.listen: cannot listen on 127.0.0.1:{port}: address already in use"]
    assert b"listening" not in result.stdout
