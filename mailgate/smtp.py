"""The SMTP gateway: aiosmtpd speaking protocol answers, never an open relay, 250 only once durable.

Every refusal is an error of core.errors answered with its own `smtp_reply`, and logged as one
INFO line per refused mail; the codes and texts are written there, not here.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, AnyStr
from weakref import WeakKeyDictionary

from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session as SmtpSession

from core.errors import MessageRejected, MessageTooLarge, RecipientRefused, StorageError
from core.helpdesk_addresses import OwnAddresses
from core.inbound import Envelope
from mailgate.spool import SpoolWriter

log = logging.getLogger(__name__)

SHUTDOWN_REPLY = b"421 4.3.2 Service shutting down, try again later\r\n"
# aiosmtpd refuses mail over data_size_limit itself (MAIL FROM ... SIZE=, and DATA), before any
# handler hook; its replies start so and are answered with MessageTooLarge's instead.
AIOSMTPD_SIZE_REFUSAL = "552 Error:"
# Only for the log line of a mail refused after DATA: a Message-ID header near the top.
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^>\r\n]{1,900}>)", re.IGNORECASE | re.MULTILINE)
HEADER_SCAN_BYTES = 65536


class GatewayHandler:
    """aiosmtpd handler: RCPT decides relay, DATA waits for the spool commit off the event loop."""

    def __init__(self, own: OwnAddresses, writer: SpoolWriter) -> None:
        self._own = own
        self._writer = writer
        self._began: WeakKeyDictionary[SmtpEnvelope, float] = WeakKeyDictionary()  # MAIL FROM, per transaction

    async def handle_MAIL(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope,
                          address: str, mail_options: list[str]) -> str:
        """What aiosmtpd does without this hook, and the time the transaction began, for its log line."""
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self._began[envelope] = time.monotonic()
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        if not self._own.accepts(address):
            return self.refuse(envelope, RecipientRefused(address), "RCPT")
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
            return self.refuse(envelope, exc, "DATA", _message_id_in(raw))
        return f"250 2.0.0 Queued as {spool_id}"

    def refuse(self, envelope: SmtpEnvelope | None, error: MessageRejected | StorageError, step: str,
               message_id: str = "-") -> str:
        """Log one line for a refused mail and return the error's own SMTP reply."""
        began = self._began.get(envelope) if envelope is not None else None
        milliseconds = 0 if began is None else round((time.monotonic() - began) * 1000)
        mail_from = envelope.mail_from if envelope is not None else None
        log.info("mail %s outcome=refused mask=- step=%s ms=%d from=%s reply=%r", message_id, step, milliseconds,
                 mail_from or "-", error.smtp_reply)
        return error.smtp_reply


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
        """The port of the first address listened on: the OS's choice when the setting said 0."""
        return self.addresses[0][1]

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) listened on; a name may stand for several, each with a port of its own for port 0."""
        assert self._server is not None
        return [(str(name[0]), int(name[1])) for name in (s.getsockname() for s in self._server.sockets)]

    def _protocol(self) -> SMTP:
        gateway = self

        class _Tracked(SMTP):
            def connection_made(self, transport: Any) -> None:
                gateway._sessions.add(self)
                super().connection_made(transport)

            def connection_lost(self, error: Exception | None) -> None:
                gateway._sessions.discard(self)
                super().connection_lost(error)

            async def push(self, status: AnyStr) -> None:
                """aiosmtpd's own size refusal becomes MessageTooLarge's: one text for every door."""
                text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
                if text.startswith(AIOSMTPD_SIZE_REFUSAL):
                    step = "DATA" if self.envelope is not None and self.envelope.rcpt_tos else "MAIL"
                    text = gateway._handler.refuse(self.envelope, MessageTooLarge(None, gateway._max_size), step)
                    await super().push(text)
                    return
                await super().push(status)

        return _Tracked(self._handler, data_size_limit=self._max_size, enable_SMTPUTF8=True,
                        hostname=self._hostname, ident="postdesk ESMTP")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self._host, self._port)
        log.info("SMTP gateway listening on %s", format_addresses(self.addresses))

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


def format_addresses(addresses: list[tuple[str, int]]) -> str:
    """`host:port, [v6]:port`: as one would write them in `smtp.listen`."""
    return ", ".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in addresses)


def _message_id_in(raw: bytes) -> str:
    """The Message-ID of raw mail that was never parsed, for a log line only; "-" when none is seen."""
    head = raw[:HEADER_SCAN_BYTES]
    end = head.find(b"\r\n\r\n")
    found = _MESSAGE_ID.search(head if end < 0 else head[:end])
    return found.group(1).decode("ascii", "replace") if found else "-"


def _in_transaction(session: SMTP) -> bool:
    envelope = getattr(session, "envelope", None)
    return envelope is not None and envelope.mail_from is not None
