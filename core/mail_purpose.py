"""Why the helpdesk writes a mail: the one list of outbound kinds, every one queued by core.outbox.queue_mail."""

from __future__ import annotations

from enum import StrEnum


class MailPurpose(StrEnum):
    """The kind of one outbound mail; its value is what the outbox stores and `postdesk outbox` shows.

    The values are those the outbox column held as plain strings before the enum: renaming one would
    change what the listing and its scripts read, and would need a migration of the rows already queued.
    """

    AUTO_REPLY = "auto_reply"  # the acknowledgement of a new ticket, to the mail's return path (RFC 3834)
    WORKER_NOTIFICATION = "notification"  # a customer's mail forwarded to the owner or the group's workers
    WORKER_REPLY = "reply"  # a worker's answer relayed to the ticket's recipients
    CLOSE_NOTICE = "close_notice"  # the ticket closed, with its public transcript (or its link), to the recipients
    TRANSCRIPT_COPY = "transcript_copy"  # the same close notice, with the transcript's link, to the group's log address
    COMMAND_ERROR = "command_error"  # a worker's mail was not relayed (or relayed with changes), and why
    MERGED = "merged"  # tickets turned out to be one conversation, to the workers
    MAIL_CAP = "mail_cap"  # the hourly cap holds mail to an address (a loop?), to the workers
    SIGN_IN_LINK = "sign_in_link"  # a one-time link to the web desk, to the worker who asked for it
    REOPENED = "reopened"  # a waiting ticket's due time came: open again, to the owner or the group's workers

