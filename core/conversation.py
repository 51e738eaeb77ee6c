"""A worker's answer, by mail or from the CLI: commands applied, text cleaned, relayed to the recipients.

The relayed mail is written fresh from templates/worker_reply.txt.j2, From the group's address with
the worker's display name: no header of the worker's mail travels and no worker address appears.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.compose import Outgoing, mailbox
from core.worker_answer import WorkerAnswer
from core.mail_purpose import MailPurpose
from core.masks import reply_subject, subject_with_mask
from core.models import AddressRow, Group, LastAction, Message, MessageKind, SpamTraining, Status, Ticket, Worker
from core.notify import Outbound, send_command_error, ticket_recipients
from core.personal_mail import Person, customer_references, private_addresses
from core.privacy import PrivateAddresses
from core.reply_text import clean_worker_text, new_text
from core.staff import worker_emails
from core.lifecycle import close_ticket, judge_spam, record_verdict, reopen_ticket, set_waiting
from core.ticket_states import assign_owner, set_priority
from core.tickets import audit, store_message
from core.worker_commands import Commands, parse_commands


def worker_by_email(session: Session, email: str) -> Worker | None:
    return session.scalars(select(Worker).where(Worker.email == email)).first()


def answer_as_worker(session: Session, out: Outbound, ticket: Ticket, worker: Worker, message: WorkerAnswer,
                     now: datetime) -> Message:
    """File a worker's mail on the ticket and act on it; returns the stored message.

    An automatic mail of the worker's (an out-of-office) is kept as an internal note: relaying it
    would start a loop with the customer's own auto-responder, and it asks for nothing.
    """
    if message.automated:
        stored = store_message(session, ticket, message, verified=True, now=now, kind=MessageKind.COMMENT,
                               author=worker)
        audit(session, ticket, actor=worker.email, action="automated_not_relayed", detail=message.message_id,
              now=now)
        return stored
    commands = check_commands(session, parse_commands(message.text, worker.email, now))
    if commands.problems:
        send_command_error(session, out, ticket, worker, commands.problems, message.message_id, now)
        audit(session, ticket, actor=worker.email, action="command_error", detail="; ".join(commands.problems),
              now=now)
        return store_message(session, ticket, message, verified=True, now=now, kind=MessageKind.COMMENT,
                             author=worker)
    if commands.comment:
        stored = store_message(session, ticket, message, verified=True, now=now, kind=MessageKind.COMMENT,
                               text=new_text(commands.body), author=worker)  # not the notification it quotes
        audit_filed(session, ticket, worker, stored, now)
        _apply(session, out, ticket, worker, commands, now, replied=False)
        return stored
    private = private_addresses(session)
    text = clean_worker_text(commands.body, private.emails)
    stored = store_message(session, ticket, message, verified=True, now=now, kind=MessageKind.REPLY, text=text,
                           author=worker)
    audit_filed(session, ticket, worker, stored, now)
    _relay(session, out, ticket, worker, text, message, private, now)
    if not commands.spam and ticket.spam_training is SpamTraining.NONE:
        record_verdict(session, ticket, SpamTraining.NOT_SPAM, actor=worker.email, now=now)  # answered: wanted
    _apply(session, out, ticket, worker, commands, now, replied=True)
    return stored


def audit_filed(session: Session, ticket: Ticket, worker: Worker, stored: Message, now: datetime) -> None:
    """Every reply and comment is in the history: who filed it, and the id that finds the message."""
    audit(session, ticket, actor=worker.email, action=stored.kind.value, detail=stored.message_id, now=now)


def check_commands(session: Session, commands: Commands) -> Commands:
    """#owner must name a worker; found out before anything is applied."""
    if commands.owner and worker_by_email(session, commands.owner) is None:
        problem = f"#owner: {commands.owner} is not a worker"
        return Commands(problems=commands.problems + (problem,), body=commands.body, given=commands.given)
    return commands


def _relay(session: Session, out: Outbound, ticket: Ticket, worker: Worker, text: str, message: WorkerAnswer,
           private: PrivateAddresses, now: datetime) -> None:
    """A copy for each recipient, referring only to ids they know; attachments that could name a worker stay behind."""
    recipients = ticket_recipients(session, ticket)
    screened = private.screen_attachments(message.attachments)
    if screened.notes:
        send_command_error(session, out, ticket, worker, screened.notes, message.message_id, now, relayed=True)
    if not recipients or not (text.strip() or screened.kept):
        return  # a reply of commands only (`#close`) has nothing to say to the customer
    group = session.get(Group, ticket.group_id)
    assert group is not None
    everyone = [mailbox(r.email, r.name) for r in recipients]
    body = out.templates_of(group).render("worker_reply", text=text, worker_name=private.redact(worker.name), group=group.name)

    def compose(person: Person) -> Outgoing:
        references = customer_references(session, ticket, person.email)
        subject = reply_subject(ticket.subject) if references else ticket.subject
        return Outgoing(sender=mailbox(group.address, private.redact(worker.name)), to=everyone,
                        subject=subject_with_mask(private.redact(subject), ticket.mask), body=body,
                        in_reply_to=references[-1] if references else None, references=references,
                        attachments=screened.kept)

    out.send_to_each(session, ticket, group, [Person(r.email, r.name) for r in recipients], compose,
                     MailPurpose.WORKER_REPLY, now)


def _apply(session: Session, out: Outbound, ticket: Ticket, worker: Worker, commands: Commands, now: datetime,
           *, replied: bool) -> None:
    """Status, owner, priority; a reply without a status command leaves the ticket waiting on the customer."""
    if replied:
        ticket.last_action = LastAction.WORKER_REPLIED
        ticket.last_wrote_id = session.scalar(select(AddressRow.id).where(AddressRow.email == worker.email))
    ticket.updated_at = now
    if commands.owner:
        assign_owner(session, ticket, worker_by_email(session, commands.owner), actor=worker.email, now=now)
    if commands.priority:
        set_priority(session, ticket, commands.priority, actor=worker.email, now=now)
    _apply_status(session, out, ticket, worker, commands, now, replied)


def _apply_status(session: Session, out: Outbound, ticket: Ticket, worker: Worker, commands: Commands,
                  now: datetime, replied: bool) -> None:
    if commands.spam:
        judge_spam(session, out, ticket, SpamTraining.SPAM, actor=worker.email, now=now, reason="#spam")
    elif commands.close:
        close_ticket(session, out, ticket, actor=worker.email, reason="#close", now=now)
    elif commands.reopen:
        reopen_ticket(session, ticket, actor=worker.email, reason="#reopen", now=now)
    elif commands.waiting_until or replied:
        set_waiting(session, ticket, commands.waiting_until, actor=worker.email,
                    reason=f"#waiting until {commands.waiting_until.isoformat()}" if commands.waiting_until
                    else "worker replied", now=now)
