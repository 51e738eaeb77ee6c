"""What a worker writes on a ticket, however it reached us: by mail, typed at the terminal, or in the browser.

One value for one rule set: core.conversation.answer_as_worker applies the `#commands`, cleans the
text and relays it the same way for all of them. A typed answer is no mail and does not pretend to
be one: it has no envelope, no headers and no references; the text as typed is what is kept whole.
By mail, the mail it came in is kept beside it (its raw bytes, its headers, the ids it answers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.addresses import Address
from core.inbound import InboundAttachment, InboundMessage
from core.message_ids import new_message_id


@dataclass(frozen=True)
class WorkerAnswer:
    """A worker's text with its `#commands`, its attachments, and the id the helpdesk files it under."""

    message_id: str
    sender: Address
    subject: str
    text: str
    attachments: tuple[InboundAttachment, ...] = ()
    date: datetime | None = None
    to: tuple[Address, ...] = ()  # typed: the recipients a new ticket is opened for; by mail: the mail's
    cc: tuple[Address, ...] = ()
    automated: bool = False  # an out-of-office of the worker's: kept as a note, never relayed
    mail: InboundMessage | None = None

    @classmethod
    def by_mail(cls, message: InboundMessage) -> WorkerAnswer:
        return cls(message.message_id, message.sender, message.subject, message.text, message.attachments,
                   message.date, message.to, message.cc, message.is_automated, message)

    @classmethod
    def typed(cls, sender: Address, subject: str, text: str, attachments: tuple[InboundAttachment, ...], *,
              hostname: str, now: datetime, to: tuple[Address, ...] = (), cc: tuple[Address, ...] = ()) -> WorkerAnswer:
        """Written at a terminal or in a browser: a fresh id of the helpdesk's own."""
        return cls(new_message_id(hostname), sender, subject, text, attachments, now, to, cc)

    # What core.tickets.store_message keeps of a mail (its StoredMail protocol):

    @property
    def raw(self) -> bytes:
        """The original, kept whole: the mail's bytes, or the text as typed."""
        return self.mail.raw if self.mail else self.text.encode("utf-8", "surrogatepass")

    @property
    def html(self) -> str:
        return self.mail.html if self.mail else ""

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return self.mail.headers if self.mail else ()

    @property
    def defects(self) -> tuple[str, ...]:
        return self.mail.defects if self.mail else ()

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """The ids a mailed answer answers; a typed one answers the ticket itself, by no id."""
        return self.mail.thread_ids if self.mail else ()
