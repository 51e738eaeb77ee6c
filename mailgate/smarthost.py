"""The SMTP client side: hands outbound mail to the relay smarthost and classifies the answer."""

from __future__ import annotations

import enum
import smtplib
import ssl
from dataclasses import dataclass
from types import TracebackType

from core.settings import RelaySettings


class Outcome(str, enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class SendResult:
    """What the smarthost said; `retry_rcpts`, when given, are the only recipients a retry is for."""

    outcome: Outcome
    detail: str = ""
    retry_rcpts: tuple[str, ...] = ()


class Smarthost:
    """One connection to the relay, reused for a batch; any network trouble is a RETRY, never a crash.

    A smarthost that cannot be reached (or refuses our TLS or login) is not tried again by this
    object: every later mail is a RETRY at once, so a dead relay costs one connection attempt a batch.
    """

    def __init__(self, relay: RelaySettings, local_hostname: str) -> None:
        self._relay = relay
        self._local_hostname = local_hostname
        self._client: smtplib.SMTP | None = None
        self.unreachable = ""

    def __enter__(self) -> Smarthost:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        relay = self._relay
        client = smtplib.SMTP(relay.host, relay.port, local_hostname=self._local_hostname,
                              timeout=relay.timeout_seconds)
        try:
            client.ehlo()
            if relay.starttls:
                client.starttls(context=ssl.create_default_context(cafile=relay.ca_file or None))
                client.ehlo()
            if relay.username:
                client.login(relay.username, relay.resolved_password())
        except BaseException:
            client.close()
            raise
        return client

    def _connected(self) -> smtplib.SMTP | None:
        """The open connection, made if need be; None (and `unreachable` set) when that fails.

        Every refusal here is the relay's or our settings' fault, not the mail's: a RETRY, even a 5xx.
        """
        if self._client is None and not self.unreachable:
            try:
                self._client = self._connect()
            except (smtplib.SMTPException, OSError) as exc:
                self.unreachable = f"smarthost {self._relay.host}:{self._relay.port}: {_describe_error(exc)}"
        return self._client

    def send(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> SendResult:
        client = self._connected()
        if client is None:
            return SendResult(Outcome.RETRY, self.unreachable)
        try:
            refused = client.sendmail(mail_from, rcpt_tos, raw,
                                      mail_options=_mail_options(client, mail_from, rcpt_tos, raw))
        except smtplib.SMTPRecipientsRefused as exc:
            return self._after_error(_classify_refusals(exc.recipients))
        except smtplib.SMTPResponseException as exc:
            self._reset()
            return self._after_error(_by_code(exc.smtp_code, exc.smtp_error))
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult(Outcome.FAILED, f"the smarthost cannot take this mail: {exc}")
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return SendResult(Outcome.RETRY, _describe_error(exc))
        if refused:
            later = tuple(rcpt for rcpt, (code, _) in refused.items() if not _permanent(code))
            return SendResult(Outcome.SENT, "refused: " + _describe(refused), later)
        return SendResult(Outcome.SENT)

    def _after_error(self, result: SendResult) -> SendResult:
        """smtplib closes its socket on a 421 but keeps the object: forget it, the next mail reconnects."""
        if self._client is not None and self._client.sock is None:
            self._client = None
        return result

    def _reset(self) -> None:
        try:
            if self._client is not None:
                self._client.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (smtplib.SMTPException, OSError):
                self._client.close()
            self._client = None


def _mail_options(client: smtplib.SMTP, mail_from: str, rcpt_tos: list[str], raw: bytes) -> list[str]:
    """SMTPUTF8 for an address beyond ASCII (smtplib refuses to send one otherwise), 8BITMIME for 8-bit text."""
    options = []
    if not all(address.isascii() for address in [mail_from, *rcpt_tos]):
        options.append("SMTPUTF8")
    if not raw.isascii() and client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    return options


def _permanent(code: int) -> bool:
    return 500 <= code < 600


def _by_code(code: int, message: bytes | str) -> SendResult:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return SendResult(Outcome.FAILED if _permanent(code) else Outcome.RETRY, f"{code} {text}")


def _classify_refusals(recipients: dict[str, tuple[int, bytes]]) -> SendResult:
    """All recipients refused: permanent only when every refusal was; else a retry for those refused for now."""
    later = tuple(rcpt for rcpt, (code, _) in recipients.items() if not _permanent(code))
    return SendResult(Outcome.RETRY if later else Outcome.FAILED, "refused: " + _describe(recipients), later)


def _describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {code} {msg.decode('utf-8', 'replace')}" for rcpt, (code, msg) in refused.items())


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__}: {exc.smtp_code} {text}"
    return f"{type(exc).__name__}: {exc}"
