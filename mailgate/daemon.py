"""`postdesk serve`: gateway, spool writer, outbox and scheduler here, the spool runner in a child, until SIGTERM.

Once every part has started it prints its ready line, `postdesk: listening on <host>:<port>`, with the
port the OS gave when `smtp.listen` says port 0: whoever started it reads the port there, with no
free port picked, closed and handed on (which another process may take meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading

from core.db import Database, open_configured
from core.errors import CannotListen
from core.groups import ensure_default_group
from core.helpdesk_addresses import OwnAddresses
from core.schema import ensure_schema
from core.settings import Settings
from mailgate.imap_poller import ImapPollers
from mailgate.outbox_sender import OutboxSender
from mailgate.runner import START_METHOD, RunnerProcess
from mailgate.scheduler import Scheduler
from mailgate.smtp import Gateway, GatewayHandler, format_addresses
from mailgate.spool import SpoolWriter, WriteTurns

log = logging.getLogger(__name__)

RUNNER_CHECK_SECONDS = 2.0
READY_LINE = "postdesk: listening on"  # followed by every address listened on, `host:port, [v6]:port`


def prepare_database(settings: Settings) -> Database:
    """Open the database, create the schema of an empty one, make sure the default group exists."""
    db = open_configured(settings.database)
    ensure_schema(db)
    with db.write() as session:
        ensure_default_group(session, settings.helpdesk)
    return db


def serve(settings: Settings, ready: threading.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT; mail in flight is finished and committed before exit."""
    db = prepare_database(settings)
    try:
        asyncio.run(_serve(settings, db, ready))
    finally:
        db.dispose()


async def _serve(settings: Settings, db: Database, ready: threading.Event | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    turns = None
    if db.is_sqlite:  # SQLite's one write lock, taken in order by this process's writers and the runner's
        db.turns = turns = WriteTurns(multiprocessing.get_context(START_METHOD))
    runner = RunnerProcess(settings, turns)
    writer = SpoolWriter(db, on_committed=runner.wake)
    gateway = Gateway(GatewayHandler(OwnAddresses.from_settings(settings.helpdesk), writer),
                      settings.smtp.host, settings.smtp.port, settings.smtp.hostname,
                      settings.smtp.max_message_size)
    try:
        await gateway.start()
    except OSError as exc:  # port taken, address not ours: one line naming the setting, not a traceback
        await asyncio.to_thread(writer.close)
        raise CannotListen("smtp.listen", settings.smtp.host, settings.smtp.port, _why_not(exc)) from None
    web = None
    if settings.web.listen:  # the web desk, on this event loop; before any child or thread starts
        from web.serve import READY_LINE as WEB_READY, WebServer

        web = WebServer(settings, db)
        try:
            print(f"{WEB_READY} http://{await web.start()}", flush=True)
        except CannotListen:
            await gateway.stop()
            await asyncio.to_thread(writer.close)
            raise
    runner.start()  # after the ports are ours: a door that cannot listen leaves no child behind
    imap = ImapPollers(db, settings.imap, runner.wake,  # one thread per [[imap]] account
                       max_message_size=settings.smtp.max_message_size).start()
    outbox = OutboxSender(db, settings.relay, settings.smtp.hostname, wake=runner.filed)  # sends what filing queued
    outbox_stop = threading.Event()
    outbox_thread = threading.Thread(target=outbox.run, args=(outbox_stop,), name="outbox", daemon=True)
    outbox_thread.start()
    scheduler = Scheduler(db, settings)  # due tickets, auto-close, purge
    # its start writes to the database, which may be locked for seconds: never on the event loop,
    # where it would hold up every SMTP session's greeting
    await asyncio.to_thread(scheduler.start)
    print(f"{READY_LINE} {format_addresses(gateway.addresses)}", flush=True)
    if ready is not None:
        ready.set()
    while not stop.is_set():
        runner.keep_alive()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RUNNER_CHECK_SECONDS)
    log.info("shutting down: finishing sessions in flight")
    await gateway.stop()
    if web is not None:
        await web.stop()
    await asyncio.to_thread(scheduler.stop)
    await asyncio.to_thread(imap.stop)  # before the runner's last drain: what they spooled gets filed
    await asyncio.to_thread(writer.close)
    code = await asyncio.to_thread(runner.stop)
    outbox_stop.set()
    outbox.wake()
    await asyncio.to_thread(outbox_thread.join)
    if code != 0:
        log.error("spool runner exited with %s; spooled mail waits for the next start", code)
        return
    log.info("stopped cleanly")


def _why_not(error: OSError) -> str:
    """The reason in the system's words (asyncio wraps it in a sentence of its own that repeats the address)."""
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host: {error.strerror}"
    return os.strerror(error.errno).lower() if error.errno else str(error)
