"""A worker writing without a mail client: text filed on a ticket, or opening one.

The text becomes a WorkerAnswer (no mail, no envelope) and goes through core.conversation as a
mailed answer does, so commands, cleaning, relaying and status follow one set of rules whichever
way the worker wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.addresses import Address, normalize_address
from core.compose import one_line
from core.conversation import answer_as_worker, audit_filed, check_commands, worker_by_email
from core.errors import UsageError
from core.groups import ensure_default_group, inbox_of
from core.helpdesk_addresses import OwnAddresses
from core.inbound import InboundAttachment
from core.masks import reply_subject
from core.models import Group, Message, MessageKind, Priority, Ticket, Worker
from core.notify import Outbound
from core.settings import HelpdeskSettings
from core.staff import find_group
from core.tickets import add_recipients, audit, open_ticket, record_thread_keys, store_message
from core.worker_answer import WorkerAnswer
from core.worker_commands import parse_commands



def parse_priority(value: str) -> Priority:
    try:
        return Priority(value.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in Priority)
        raise UsageError(f"unknown priority {value!r} (use one of {choices})") from None


def reply_as_worker(session: Session, out: Outbound, ticket: Ticket, worker: Worker, text: str,
                    attachments: Sequence[InboundAttachment], now: datetime) -> Message:
    """File the worker's text on the ticket: a reply relayed to every recipient, or what its commands say."""
    answer = _typed(worker, reply_subject(ticket.subject), text, attachments, out.hostname, now)
    return _file(session, out, ticket, worker, answer, now)


def comment_as_worker(session: Session, hostname: str, ticket: Ticket, worker: Worker, text: str,
                      now: datetime) -> Message:
    """An internal note on the ticket, sent to nobody; its text is taken as written (no `#` commands)."""
    note = _typed(worker, reply_subject(ticket.subject), text, (), hostname, now)
    stored = store_message(session, ticket, note, verified=True, now=now, kind=MessageKind.COMMENT,
                           author=worker)
    audit_filed(session, ticket, worker, stored, now)
    ticket.updated_at = now
    return stored


def open_ticket_as_worker(session: Session, outbound: Outbound, worker: Worker, to: Sequence[str],
                          cc: Sequence[str], subject: str, priority: Priority, group: str | None, text: str,
                          attachments: Sequence[InboundAttachment], now: datetime, *,
                          helpdesk: HelpdeskSettings, notify: bool = True) -> Ticket:
    """Open a ticket in the group's inbox (the default group's without one) and send the recipients the text;
    without `notify`, mail nobody: the text is kept as an internal note (a ticket opened for the record)."""
    to_addresses = _recipients(session, to, helpdesk)
    cc_addresses = _recipients(session, cc, helpdesk)
    chosen = find_group(session, group) if group else ensure_default_group(session, helpdesk)
    answer = _typed(worker, one_line(subject), text, attachments, outbound.hostname, now, to=to_addresses,
                    cc=cc_addresses)
    ticket = open_ticket(session, answer, chosen, inbox_of(session, chosen), now)
    ticket.priority = priority
    audit(session, ticket, actor=worker.email, action="created", detail=f"opened by {worker.email} (CLI)", now=now)
    add_recipients(session, ticket, list(to_addresses + cc_addresses))
    if notify:
        _file(session, outbound, ticket, worker, answer, now)
    else:
        audit_filed(session, ticket, worker, store_message(session, ticket, answer, verified=True, now=now,
                                                           kind=MessageKind.COMMENT, author=worker), now)
    return ticket


def _file(session: Session, out: Outbound, ticket: Ticket, worker: Worker, answer: WorkerAnswer,
          now: datetime) -> Message:
    _refuse_bad_commands(session, worker, answer.text, now)
    stored = answer_as_worker(session, out, ticket, worker, answer, now)
    record_thread_keys(session, ticket, answer, opened=False, trusted=True)  # its own id: replies to it prove it
    return stored


def _refuse_bad_commands(session: Session, worker: Worker, text: str, now: datetime) -> None:
    """By mail a bad command earns the worker an error mail; at the terminal we refuse before filing anything."""
    problems = check_commands(session, parse_commands(text, worker.email, now)).problems
    if problems:
        raise UsageError(f"nothing filed: {'; '.join(problems)}")


def _typed(worker: Worker, subject: str, text: str, attachments: Sequence[InboundAttachment], hostname: str,
           now: datetime, *, to: tuple[Address, ...] = (), cc: tuple[Address, ...] = ()) -> WorkerAnswer:
    return WorkerAnswer.typed(Address(worker.email, worker.name), subject, text, tuple(attachments),
                              hostname=hostname, now=now, to=to, cc=cc)


def _recipients(session: Session, values: Sequence[str], helpdesk: HelpdeskSettings) -> tuple[Address, ...]:
    """Each value one mailbox outside the helpdesk: never our own address, a group's, or a worker's."""
    own = OwnAddresses.from_settings(helpdesk)
    found = []
    for value in values:
        address = _mailbox(value)
        if own.accepts(address.email) or session.scalar(select(Group.id).where(Group.address == address.email)):
            raise UsageError(f"{address.email} is a helpdesk address, not a recipient")
        if worker_by_email(session, address.email) is not None:
            raise UsageError(f"{address.email} is a worker's address; workers are never recipients")
        found.append(address)
    return tuple(found)


def _mailbox(value: str) -> Address:
    """`alice@example.org` or `Alice Smith <alice@example.org>`, normalised."""
    pairs = getaddresses([value])
    if len(pairs) != 1:
        raise UsageError(f"not one mail address: {value!r}")
    name, email = pairs[0]
    try:
        return Address(normalize_address(email), one_line(name))
    except ValueError:
        raise UsageError(f"not a mail address: {value!r}") from None
