"""`postdesk serve`: the SMTP gateway, the spool writer and the spool runner, until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

from core.db import Database, open_database
from core.groups import ensure_default_group
from core.helpdesk_addresses import OwnAddresses
from core.schema import ensure_schema
from core.settings import Settings
from mailgate.runner import SpoolRunner
from mailgate.smtp import Gateway, GatewayHandler
from mailgate.spool import SpoolWriter

log = logging.getLogger(__name__)


def prepare_database(settings: Settings) -> Database:
    """Open the database, create the schema of an empty one, make sure the default group exists."""
    db = open_database(settings.database.url)
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

    runner = SpoolRunner(db, settings.helpdesk)
    runner_stop = threading.Event()
    runner_thread = threading.Thread(target=runner.run, args=(runner_stop,), name="spool-runner", daemon=True)
    runner_thread.start()
    writer = SpoolWriter(db, on_committed=runner.wake)
    gateway = Gateway(GatewayHandler(OwnAddresses.from_settings(settings.helpdesk), writer),
                      settings.smtp.host, settings.smtp.port, settings.smtp.hostname,
                      settings.smtp.max_message_size)
    await gateway.start()
    print(f"postdesk: listening on {settings.smtp.host}:{gateway.port}", flush=True)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down: finishing sessions in flight")
    await gateway.stop()
    await asyncio.to_thread(writer.close)
    runner_stop.set()
    runner.wake()
    await asyncio.to_thread(runner_thread.join)
    log.info("stopped cleanly")
