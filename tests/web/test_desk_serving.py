"""`postdesk serve` serves the desk beside the gateway when [web] listen is set; `postdesk web` serves it alone.
Both bind port 0 here and name the port in their ready line (issue 14, serving)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from testkit import ROOT, Daemon

WEB_READY = re.compile(rb"postdesk: web desk on (http://[^\s]+)")
pytestmark = pytest.mark.sqlite_only


def with_web(config: Path) -> Path:
    config.write_text(config.read_text().replace('[web]\nlisten = ""', '[web]\nlisten = "127.0.0.1:0"'))
    return config


def sign_in_page(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"{url}/sign-in", timeout=10) as answer:
        return answer.status, answer.headers["content-security-policy"]


def test_the_daemon_serves_the_desk_where_its_ready_line_says(config_path: Path, tmp_path: Path) -> None:
    daemon = Daemon(with_web(config_path), tmp_path / "daemon.log").start()
    try:
        found = WEB_READY.search(daemon.log.read_bytes())
        assert found is not None, daemon.log.read_text()
        status, csp = sign_in_page(found[1].decode())
        assert status == 200 and "frame-ancestors 'none'" in csp
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()


def test_postdesk_web_serves_the_desk_alone_until_sigterm(config_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "workers", "--config", str(with_web(config_path)), "web"],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while (found := WEB_READY.search(log.read_bytes())) is None:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert sign_in_page(found[1].decode())[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()


def test_the_desk_answers_without_nagles_delay_on_a_kept_alive_connection() -> None:
    """asyncio turns Nagle's algorithm off only on a socket that says it is TCP; uvicorn's does not say so,
    and every request on a kept-alive connection then waited for the client's delayed ACK."""
    import asyncio
    import socket

    import uvicorn

    from web.serve import listening_socket

    async def accept_one() -> int:
        config = uvicorn.Config(app=None, host="127.0.0.1", port=0)  # type: ignore[arg-type]  (only bound here)
        sock = listening_socket(config)
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                served = transport.get_extra_info("socket")
                accepted.set_result(served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        nodelay = await asyncio.wait_for(accepted, 10)
        writer.close()
        server.close()
        return nodelay

    assert asyncio.run(accept_one()) != 0
