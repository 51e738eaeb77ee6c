"""The SMTP gateway: aiosmtpd speaking protocol answers, never an open relay, 250 only once durable."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session as SmtpSession

from core.errors import StorageError
from core.helpdesk_addresses import OwnAddresses
from core.inbound import Envelope
from mailgate.spool import SpoolWriter

log = logging.getLogger(__name__)

SHUTDOWN_REPLY = b"421 4.3.2 Service shutting down, try again later\r\n"


class GatewayHandler:
    """aiosmtpd handler: RCPT decides relay, DATA waits for the spool commit off the event loop."""

    def __init__(self, own: OwnAddresses, writer: SpoolWriter) -> None:
        self._own = own
        self._writer = writer

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self._own.accepts(address):
            return f"550 5.1.1 <{address}>: not a helpdesk address, relaying denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        accepted = Envelope("smtp", envelope.mail_from or "", tuple(envelope.rcpt_tos))
        try:
            spool_id = await self._writer.accept(raw, accepted)
        except StorageError as exc:
            log.error("could not spool mail from %r: %s", envelope.mail_from, exc)
            return "451 4.3.0 Temporary storage failure, try again later"
        return f"250 2.0.0 Queued as {spool_id}"


class Gateway:
    """The listening server; on shutdown it lets transactions in flight finish, then says 421."""

    def __init__(self, handler: GatewayHandler, host: str, port: int, hostname: str, max_size: int) -> None:
        self._handler = handler
        self._host, self._port = host, port
        self._hostname, self._max_size = hostname, max_size
        self._sessions: set[SMTP] = set()
        self._server: asyncio.base_events.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def _protocol(self) -> SMTP:
        gateway = self

        class _Tracked(SMTP):
            def connection_made(self, transport: Any) -> None:
                gateway._sessions.add(self)
                super().connection_made(transport)

            def connection_lost(self, error: Exception | None) -> None:
                gateway._sessions.discard(self)
                super().connection_lost(error)

        return _Tracked(self._handler, data_size_limit=self._max_size, enable_SMTPUTF8=True,
                        hostname=self._hostname, ident="postdesk ESMTP")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self._host, self._port)
        log.info("SMTP gateway listening on %s:%d", self._host, self.port)

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop listening, wait for every transaction in flight, then close idle sessions."""
        if self._server is None:
            return
        self._server.close()
        deadline = asyncio.get_running_loop().time() + grace_seconds
        while any(_in_transaction(s) for s in self._sessions):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("shutdown grace period over with transactions in flight")
                break
            await asyncio.sleep(0.05)
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.write(SHUTDOWN_REPLY)  # type: ignore[attr-defined]
                session.transport.close()
        await self._server.wait_closed()


def _in_transaction(session: SMTP) -> bool:
    envelope = getattr(session, "envelope", None)
    return envelope is not None and envelope.mail_from is not None
