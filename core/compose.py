"""Builds every outbound mail fresh from a template: no header of any received mail travels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2

from core.inbound import InboundAttachment
from core.message_ids import new_message_id


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("templates", "."), autoescape=False,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(template: str, **context: Any) -> str:
    """Render one of templates/*.txt.j2."""
    return _templates().get_template(f"{template}.txt.j2").render(**context)


def one_line(value: str) -> str:
    """Header text from outside is folded to one line: no CR or LF ever reaches a header we write."""
    return " ".join(value.split())


def mailbox(email: str, name: str = "") -> HeaderAddress:
    local, _, domain = email.rpartition("@")
    return HeaderAddress(display_name=one_line(name), username=local, domain=domain)


@dataclass(frozen=True)
class Outgoing:
    """Everything one outbound mail says; `build` turns it into an EmailMessage with a fresh Message-ID."""

    sender: HeaderAddress
    to: Sequence[HeaderAddress]
    subject: str
    body: str
    reply_to: HeaderAddress | None = None
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    auto_submitted: str | None = None
    attachments: Sequence[InboundAttachment] = field(default=())  # received ones travel as they came

    def build(self, hostname: str, now: datetime) -> EmailMessage:
        mail = EmailMessage(policy=SMTP)
        mail["From"] = self.sender
        mail["To"] = list(self.to)
        if self.reply_to is not None:
            mail["Reply-To"] = self.reply_to
        mail["Subject"] = one_line(self.subject)
        mail["Date"] = format_datetime(now)
        mail["Message-ID"] = new_message_id(hostname)
        if self.in_reply_to:
            mail["In-Reply-To"] = self.in_reply_to
        if self.references:
            mail["References"] = " ".join(self.references[-20:])
        if self.auto_submitted:
            mail["Auto-Submitted"] = self.auto_submitted
        mail.set_content(self.body)
        for attachment in self.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            mail.add_attachment(attachment.data, maintype=maintype or "application",
                                subtype=subtype or "octet-stream", filename=one_line(attachment.filename) or None)
        return mail
