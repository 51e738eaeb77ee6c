"""Serving the desk with uvicorn: inside `postdesk serve` (the daemon's event loop) or alone (`postdesk web`).

The socket is bound here, before uvicorn starts, so `[web] listen` may say port 0 and the ready
line can name the port the OS gave. The daemon owns the signals: uvicorn's own handlers (which
replace the process's SIGTERM handling while it serves) are not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator

import uvicorn

from core.db import Database
from core.desk import Helpdesk
from core.errors import CannotListen
from core.settings import Settings
from web.app import create_app

log = logging.getLogger(__name__)
READY_LINE = "postdesk: web desk on"


def listening_socket(config: uvicorn.Config) -> socket.socket:
    """uvicorn's bound socket, named as TCP: asyncio turns Nagle's algorithm off only on sockets whose
    proto says TCP, and uvicorn's says 0. With Nagle on, a response's body waits for the client's
    delayed ACK of its headers: 40 ms added to every request on a kept-alive connection."""
    bound = config.bind_socket()
    return socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to whoever runs it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The desk on `[web] listen`, served by uvicorn on the running event loop."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.config = uvicorn.Config(create_app(Helpdesk(settings, db)), host=settings.web.host,
                                     port=settings.web.port, lifespan="off", access_log=False, log_level="warning",
                                     proxy_headers=False, server_header=False)
        self.server = _QuietServer(self.config)
        self.task: asyncio.Task[None] | None = None
        self.address = ""

    async def start(self) -> str:
        """Listen and serve in the background; returns `host:port` as bound."""
        try:
            sock = listening_socket(self.config)
        except (OSError, SystemExit) as exc:  # uvicorn logs and exits when the port is taken
            raise CannotListen("web.listen", self.settings.web.host, self.settings.web.port,
                               "address already in use" if isinstance(exc, SystemExit) else str(exc)) from None
        host, port = sock.getsockname()[:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise CannotListen("web.listen", self.settings.web.host, self.settings.web.port, "did not start")
            await asyncio.sleep(0.01)
        return self.address

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        await self.task


def serve_alone(settings: Settings, db: Database) -> None:
    """`postdesk web`: only the desk, until SIGTERM or SIGINT."""
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server = WebServer(settings, db)
        address = await server.start()
        print(f"{READY_LINE} http://{address}", flush=True)
        await stop.wait()
        await server.stop()

    asyncio.run(run())
