"""Builds every outbound mail fresh from templates: no header of any received mail travels.

Every mail the helpdesk writes says the same in two parts, plain text and HTML (multipart/alternative),
rendered from templates/NAME.txt.j2 and templates/NAME.html.j2 in one `render` call. Only the HTML
templates autoescape: a customer's `<script>` reaches a worker's HTML reader as text, while the text
part shows it verbatim, as it was written.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from core.inbound import InboundAttachment
from core.message_ids import new_message_id

if TYPE_CHECKING:  # Jinja loads when the first mail is written, not in every command that might write one
    import jinja2


@dataclass(frozen=True)
class Rendered:
    """One mail's body in its two parts, from the same template context."""

    text: str
    html: str


@dataclass(frozen=True)
class Templates:
    """Which templates write a mail: the installation's folder (`[templates] folder`) before the shipped
    templates/, and a language's own version (`close_notice.fr.txt.j2`) before the plain one.

    A group names its language (`postdesk group edit Support --language fr`), so a French customer is
    greeted in French; a template missing in that language falls back to the plain one.
    """

    folder: str = ""
    language: str = ""

    def speaking(self, language: str) -> Templates:
        return Templates(self.folder, language)

    def render(self, template: str, **context: Any) -> Rendered:
        """templates/<template>.txt.j2 and .html.j2 rendered with the same context (the HTML one escaped)."""
        environment = _environment(self.folder)
        return Rendered(text=environment.select_template(self._names(template, "txt")).render(**context),
                        html=self.document(template, **context))

    def document(self, template: str, **context: Any) -> str:
        """templates/<template>.html.j2 alone, escaped: a mail's HTML part, or a page (a sealed transcript)."""
        context = {"lang": self.language, **context}  # the page says its language (_layout.html.j2)
        return _environment(self.folder).select_template(self._names(template, "html")).render(**context)

    def line(self, template: str, **context: Any) -> str:
        """A one-line text from templates/<template>.line.j2 (a subject), folded to one line."""
        return one_line(_environment(self.folder).select_template(self._names(template, "line")).render(**context))

    def _names(self, template: str, kind: str) -> list[str]:
        plain = f"{template}.{kind}.j2"
        return [f"{template}.{self.language}.{kind}.j2", plain] if self.language else [plain]


SHIPPED = Templates()


@lru_cache(maxsize=8)
def _environment(folder: str) -> jinja2.Environment:
    import jinja2

    shipped = jinja2.PackageLoader("templates", ".")
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder), shipped]) if folder else shipped
    return jinja2.Environment(loader=loader,
                              autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",),
                                                                  default_for_string=False),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def one_line(value: str) -> str:
    """Header text from outside is folded to one line: no CR or LF ever reaches a header we write."""
    return " ".join(value.split())


def mailbox(email: str, name: str = "") -> HeaderAddress:
    """A header mailbox for a stored address; a quoted local part is unquoted first (the header quotes it once)."""
    local, _, domain = email.rpartition("@")
    if len(local) >= 2 and local[0] == local[-1] == '"':
        local = local[1:-1]
    return HeaderAddress(display_name=one_line(name), username=local, domain=domain)


_WRITABLE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")  # printable ASCII: it goes out as it is, never encoded
_LONGEST_ID = 998 - len("In-Reply-To: ")  # SMTP's line limit, with the longest field name before it


class MessageIdField(str):
    """A Message-ID, In-Reply-To or References field: folded only between its ids, never encoded.

    The email package writes a field it does not know as text, and text longer than a line as RFC 2047
    encoded words, which no client reads as an id (Outlook's ids run to 90 characters). An object with
    a `name` is stored and folded by itself (EmailPolicy.header_store_parse, _fold).
    """

    name: str
    ids: tuple[str, ...]

    def __new__(cls, name: str, ids: Sequence[str]) -> MessageIdField:
        field = super().__new__(cls, " ".join(ids))
        field.name, field.ids = name, tuple(ids)
        return field

    def __getnewargs__(self) -> tuple[str, tuple[str, ...]]:  # type: ignore[override]
        return self.name, self.ids

    def fold(self, *, policy: Policy) -> str:
        """`Name: <id> <id>`, a new line before an id that would make the line longer than the policy's."""
        limit = policy.max_line_length or sys.maxsize
        lines = [f"{self.name}:"]
        for message_id in self.ids:
            if lines[-1] != f"{self.name}:" and len(lines[-1]) + 1 + len(message_id) > limit:
                lines.append("")
            lines[-1] += f" {message_id}"
        return policy.linesep.join(lines) + policy.linesep


def _writable(ids: Sequence[str]) -> list[str]:
    """Ids other mail gave us, without those that cannot go out as they are (8-bit, or over SMTP's line)."""
    return [i for i in ids if len(i) <= _LONGEST_ID and _WRITABLE_ID.fullmatch(i)]


@dataclass(frozen=True)
class Outgoing:
    """Everything one outbound mail says; `build` turns it into an EmailMessage with a fresh Message-ID."""

    sender: HeaderAddress
    to: Sequence[HeaderAddress]
    subject: str
    body: Rendered
    reply_to: HeaderAddress | None = None
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    auto_submitted: str | None = None
    attachments: Sequence[InboundAttachment] = field(default=())  # received ones travel as they came

    def build(self, hostname: str, now: datetime) -> EmailMessage:
        """The mail as it will be serialized: text and HTML alternatives, then the attachments."""
        mail = EmailMessage(policy=SMTP)
        mail["From"] = self.sender
        mail["To"] = list(self.to)
        if self.reply_to is not None:
            mail["Reply-To"] = self.reply_to
        mail["Subject"] = one_line(self.subject)
        mail["Date"] = format_datetime(now)
        mail["Message-ID"] = MessageIdField("Message-ID", [new_message_id(hostname)])
        in_reply_to = _writable([self.in_reply_to] if self.in_reply_to else [])
        if in_reply_to:
            mail["In-Reply-To"] = MessageIdField("In-Reply-To", in_reply_to)
        references = _writable(self.references)[-20:]
        if references:
            mail["References"] = MessageIdField("References", references)
        if self.auto_submitted:
            mail["Auto-Submitted"] = self.auto_submitted
        mail.set_content(self.body.text)
        mail.add_alternative(self.body.html, subtype="html")
        for attachment in self.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            mail.add_attachment(attachment.data, maintype=maintype or "application",
                                subtype=subtype or "octet-stream", filename=one_line(attachment.filename) or None)
        return mail

    def contents(self) -> Iterator[bytes]:
        """Everything this mail will say, before any header or transfer encoding hides it: for scanning."""
        for address in (self.sender, *self.to, *([self.reply_to] if self.reply_to else [])):
            yield f"{address.display_name} {address.addr_spec}".encode()
        yield self.subject.encode()
        yield self.body.text.encode()
        yield self.body.html.encode()
        for attachment in self.attachments:
            yield (attachment.filename or "").encode()
            yield attachment.data or b""
