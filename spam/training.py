"""What workers teach the filter: a ticket's verdict moves its first customer mail's counts, once, reversibly.

A ticket remembers its verdict (`spam_training`). Changing it subtracts the mail's tokens from the old
class and adds them to the new one; the verdict is changed by compare-and-set, so two processes
giving the same verdict at once count it once. A ticket with no customer mail (a worker opened it
with `postdesk new` and nobody answered yet) teaches nothing and keeps no verdict: a verdict that
counted nothing could not be undone by subtracting a mail that arrives later.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from core.models import Message, MessageKind, SpamTraining, Ticket
from spam.statistics import HAM, SPAM, CountChanges, apply_changes
from spam.tokens import MailText, TokenizerOptions, DEFAULT_OPTIONS, tokenize

CLASS_OF = {SpamTraining.SPAM: SPAM, SpamTraining.NOT_SPAM: HAM}


class Lesson(enum.Enum):
    """What a verdict taught the filter."""

    LEARNT = "learnt"  # the mail's counts moved to the new verdict
    ALREADY_KNOWN = "already known"  # the ticket had that verdict: nothing counted twice
    NO_CUSTOMER_MAIL = "no customer mail"  # nothing to learn from: the filter and the verdict are unchanged


def train_ticket(session: Session, ticket: Ticket, verdict: SpamTraining) -> Lesson:
    """Teach the filter this ticket's verdict, moving its first customer mail's counts."""
    previous = ticket.spam_training
    if previous is verdict:
        return Lesson.ALREADY_KNOWN
    mail = first_mail(session, ticket)
    if mail is None:
        return Lesson.NO_CUSTOMER_MAIL
    changed = session.execute(update(Ticket).where(Ticket.id == ticket.id, Ticket.spam_training == previous)
                              .values(spam_training=verdict).execution_options(synchronize_session=False))
    session.refresh(ticket, ["spam_training"])
    # another process changed the verdict first: start from its verdict
    if cast("CursorResult[Any]", changed).rowcount != 1:
        return train_ticket(session, ticket, verdict)
    apply_changes(session, verdict_changes(tokenize(mail), previous, verdict))
    return Lesson.LEARNT


def verdict_changes(tokens: frozenset[str], previous: SpamTraining, verdict: SpamTraining) -> CountChanges:
    changes = CountChanges()
    if previous in CLASS_OF:
        changes.add(tokens, CLASS_OF[previous], -1)
    if verdict in CLASS_OF:
        changes.add(tokens, CLASS_OF[verdict], +1)
    return changes


def first_mail(session: Session, ticket: Ticket) -> Message | None:
    """The mail a verdict is about: the one that opened the ticket and was scored, or a customer's first answer."""
    return session.scalars(select(Message).where(Message.ticket_id == ticket.id,
                                                 Message.kind == MessageKind.INBOUND)
                           .order_by(Message.id).limit(1)).first()


def train_mails(session: Session, mails: Iterable[MailText], verdict: SpamTraining,
                options: TokenizerOptions = DEFAULT_OPTIONS) -> int:
    """Bulk training (a corpus, not tickets): add every mail to the verdict's class; returns how many."""
    changes = CountChanges()
    count = 0
    for mail in mails:
        changes.add(tokenize(mail, options), CLASS_OF[verdict])
        count += 1
    apply_changes(session, changes)
    return count
