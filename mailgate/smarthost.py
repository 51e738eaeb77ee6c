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
    outcome: Outcome
    detail: str = ""


class Smarthost:
    """One connection to the relay, reused for a batch; any network trouble is a RETRY, never a crash."""

    def __init__(self, relay: RelaySettings, local_hostname: str) -> None:
        self._relay = relay
        self._local_hostname = local_hostname
        self._client: smtplib.SMTP | None = None

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
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if relay.username:
                client.login(relay.username, relay.resolved_password())
        except BaseException:
            client.close()
            raise
        return client

    def send(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> SendResult:
        try:
            if self._client is None:
                self._client = self._connect()
            refused = self._client.sendmail(mail_from, rcpt_tos, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            return _classify_refusals(exc.recipients)
        except smtplib.SMTPResponseException as exc:
            self._reset()
            return _by_code(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            return SendResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        if refused:
            return SendResult(Outcome.SENT, "refused: " + _describe(refused))
        return SendResult(Outcome.SENT)

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


def _by_code(code: int, message: bytes | str) -> SendResult:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    outcome = Outcome.FAILED if 500 <= code < 600 else Outcome.RETRY
    return SendResult(outcome, f"{code} {text}")


def _classify_refusals(recipients: dict[str, tuple[int, bytes]]) -> SendResult:
    """All recipients refused: permanent only when every refusal was permanent."""
    permanent = all(500 <= code < 600 for code, _ in recipients.values())
    return SendResult(Outcome.FAILED if permanent else Outcome.RETRY, "refused: " + _describe(recipients))


def _describe(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {code} {msg.decode('utf-8', 'replace')}" for rcpt, (code, msg) in refused.items())
