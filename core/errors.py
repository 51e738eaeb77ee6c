"""The one exception tree of postdesk; the SMTP edge and the CLI translate it.

    PostdeskError
    ├── ConfigError          a setting is missing, unknown or of the wrong type
    │   └── CannotListen     the address a listen setting names is taken or not ours
    ├── StorageError         the database failed; the caller may retry later (SMTP 451)
    │   ├── SchemaOutOfDate  the database needs `postdesk db upgrade`
    │   └── ThreadRace       another gateway opened a ticket for the same thread; retry
    ├── MessageRejected      inbound mail the gateway refuses outright (SMTP 5xx)
    │   ├── RecipientRefused an address the helpdesk does not accept mail for (550 5.1.1)
    │   └── MessageTooLarge  bigger than `[smtp] max_message_size` (552 5.3.4)
    ├── UnparseableMessage   raw bytes that cannot become a message (quarantined)
    ├── MailboxUnavailable   an IMAP server could not be reached, dropped us or refused a command
    │   └── MailboxLoginRefused  it refused the user name or password
    ├── TicketNotFound       no ticket has that mask
    │   └── AmbiguousMask    the first letters given fit several tickets
    ├── NotFound             no worker, group or other record by that name
    ├── AlreadyExists        a worker, group or address that is taken
    └── UsageError           a command was given arguments it cannot act on

Each error the SMTP edge can meet carries its own `smtp_reply`: the code and text a client is
given are written here, once, and mailgate/smtp.py only passes them on.
"""

from __future__ import annotations


class PostdeskError(Exception):
    """Base of every error postdesk raises on purpose."""


class ConfigError(PostdeskError):
    """A setting is wrong; carries the dotted key so the message can name it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"setting {key}: {problem}")
        self.key = key
        self.problem = problem


class CannotListen(ConfigError):
    """The daemon cannot listen where a setting says (port in use, address not ours): one line, not a traceback."""

    def __init__(self, key: str, host: str, port: int, reason: str) -> None:
        super().__init__(key, f"cannot listen on {host}:{port}: {reason}")
        self.host, self.port = host, port


class StorageError(PostdeskError):
    """The database could not complete a write; nothing was acknowledged, so the sender tries again."""

    smtp_reply = "451 4.3.0 Temporary storage failure, try again later"


class SchemaOutOfDate(StorageError):
    """The database schema is behind the code."""


class ThreadRace(StorageError):
    """Two gateways opened tickets for one thread at once; the loser's transaction is retried."""


class MessageRejected(PostdeskError):
    """Inbound mail refused before it was accepted; carries the SMTP reply."""

    smtp_reply = "550 5.7.1 Message rejected"


class RecipientRefused(MessageRejected):
    """The helpdesk does not accept mail for this address (never an open relay)."""

    def __init__(self, address: str) -> None:
        super().__init__(f"not a helpdesk address: {address}")
        self.address = address
        self.smtp_reply = f"550 5.1.1 <{address}>: not a helpdesk address, relaying denied"


class MessageTooLarge(MessageRejected):
    """The message exceeds the configured size limit."""

    def __init__(self, size: int | None, limit: int) -> None:
        """`size` None: over the limit by an amount nobody counted (the SMTP server stops reading at the limit)."""
        amount = f"more than {limit}" if size is None else str(size)
        super().__init__(f"message of {amount} bytes exceeds the limit of {limit}")
        self.size, self.limit = size, limit
        self.smtp_reply = f"552 5.3.4 Message size exceeds fixed limit of {limit} bytes"


class UnparseableMessage(PostdeskError):
    """Raw bytes that cannot be read as a message; they go to quarantine, not away."""


class MailboxUnavailable(PostdeskError):
    """An IMAP account could not be read now; nothing was lost, the poller tries again later."""

    def __init__(self, account: str, problem: str) -> None:
        super().__init__(f"imap {account}: {problem}")
        self.account = account


class MailboxLoginRefused(MailboxUnavailable):
    """The IMAP server refused the account's user name or password."""


class TicketNotFound(PostdeskError):
    """No ticket carries the mask the user gave."""

    def __init__(self, mask: str) -> None:
        super().__init__(f"no ticket with mask {mask}")
        self.mask = mask


class AmbiguousMask(TicketNotFound):
    """A mask prefix that fits more than one ticket: the user must give more of it."""

    def __init__(self, given: str, candidates: list[str]) -> None:
        PostdeskError.__init__(self, f"{given} fits several tickets ({', '.join(candidates)}"
                               f"{', ...' if len(candidates) >= AMBIGUOUS_SHOWN else ''}): give more of the mask")
        self.candidates = candidates


AMBIGUOUS_SHOWN = 5


class NotFound(PostdeskError):
    """No record answers to the name the user gave."""


class AlreadyExists(PostdeskError):
    """The name or address is taken already."""


class UsageError(PostdeskError):
    """A command cannot act on the arguments it was given."""
