"""The stored shape of the helpdesk: tickets, messages, their parts, the spool and quarantine."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    false,
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, PostgreSQL must not shift it."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Status(str, enum.Enum):
    OPEN = "open"
    WAITING = "waiting"
    CLOSED = "closed"
    DELETED = "deleted"
    SPAM = "spam"  # held by the spam filter until a worker's verdict (core/spam_hold.py), never notified

    @property
    def set_aside(self) -> bool:
        """Deleted or held as spam: mail to it is kept but is no activity, tells nobody, changes nothing."""
        return self in (Status.DELETED, Status.SPAM)


ACTIVE_STATUSES_SQL = "status IN ('open', 'waiting')"  # Status.OPEN and Status.WAITING, spelled for an index


class Priority(str, enum.Enum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class LastAction(str, enum.Enum):
    NEW = "new"
    RECIPIENT_REPLIED = "recipient_replied"
    WORKER_REPLIED = "worker_replied"


class MessageKind(str, enum.Enum):
    """What a stored message is in the conversation."""

    INBOUND = "inbound"    # mail from a recipient (or a stranger, flagged unverified)
    REPLY = "reply"        # a worker's answer, relayed to the recipients
    COMMENT = "comment"    # a worker's internal note, relayed to nobody
    BOUNCE = "bounce"      # a delivery status notification about one of our messages


class OutboxState(str, enum.Enum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class SpamTraining(str, enum.Enum):
    """What the spam filter was taught about a ticket's first mail."""

    NONE = "none"
    NOT_SPAM = "not_spam"
    SPAM = "spam"


class KeyOrigin(str, enum.Enum):
    """Why a Message-ID points at a ticket; only `sent` ids prove the sender saw our mail."""

    RECEIVED = "received"
    SENT = "sent"
    REFERENCED = "referenced"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e], native_enum=False,
                validate_strings=True, length=24)


class Base(DeclarativeBase):
    pass


class AddressRow(Base):
    """Every mailbox the helpdesk has seen, stored once, normalised."""

    __tablename__ = "addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    bouncing: Mapped[bool] = mapped_column(Boolean, default=False)


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    domain: Mapped[str | None] = mapped_column(String(255), unique=True)


class Group(Base):
    __tablename__ = "groups"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    auto_reply: Mapped[bool] = mapped_column(Boolean, default=True)
    close_notice: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    auto_close_days: Mapped[int | None] = mapped_column(Integer)  # waiting this long untouched: closed (scheduler)
    language: Mapped[str] = mapped_column(String(16), default="", server_default="")  # "fr": templates' NAME.fr.*
    # On closing, the public conversation is stored encrypted and the close notice carries its link (core.transcripts)
    transcripts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    transcript_address: Mapped[str] = mapped_column(String(320), default="", server_default="")  # the log copy
    buckets: Mapped[list[Bucket]] = relationship(back_populates="group")


class Bucket(Base):
    __tablename__ = "buckets"
    __table_args__ = (UniqueConstraint("group_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    group: Mapped[Group] = relationship(back_populates="buckets")


class Worker(Base):
    __tablename__ = "workers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id (core.accounts); None: no password


class WebSession(Base):
    """A worker signed in to the web desk: only the token's SHA-256 is kept, never the token."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))  # every form of this session carries it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # signed out, revoked, password changed


class ApiToken(Base):
    """A worker's token for the JSON API: shown once, only its SHA-256 kept, revocable."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInLink(Base):
    """A one-time sign-in link mailed to a worker: only its SHA-256 kept; used once, within minutes."""

    __tablename__ = "sign_in_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInFailure(Base):
    """A refused sign-in: what throttles the next tries, per address and per client."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_email_at", "email", "at"),
                      Index("ix_sign_in_failures_client_at", "client", "at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerSignInLink(Base):
    """A one-time link to the customer portal, mailed to an address: only its SHA-256 kept; used once, within minutes."""

    __tablename__ = "customer_sign_in_links"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CustomerSession(Base):
    """A customer signed in to the portal: a row of its own, so no customer session is ever a worker's."""

    __tablename__ = "customer_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EncryptedTranscript(Base):
    """A closed ticket's public conversation, AES-256-GCM encrypted under a key that is stored nowhere.

    The key lives only in the link's fragment (`/transcripts/ID#KEY`), so this row alone reads as
    noise; it names no ticket, outlives the ticket's purge and is removed after its retention.
    """

    __tablename__ = "transcripts"
    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)  # random; the link's path
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Ticket(Base):
    __tablename__ = "tickets"
    # the purge claims one status at a time in (updated_at, id) order, resuming after the last one (core.purge)
    __table_args__ = (Index("ix_tickets_status_updated_id", "status", "updated_at", "id"),
                      Index("ix_tickets_status_waiting_until", "status", "waiting_until"),
                      # the worker's default view (core.ticket_views): open and waiting, newest activity first
                      Index("ix_tickets_active_updated", "updated_at", "id",
                            sqlite_where=text(ACTIVE_STATUSES_SQL), postgresql_where=text(ACTIVE_STATUSES_SQL)),
                      Index("ix_tickets_created", "created_at"),
                      Index("ix_tickets_owner", "owner_id"),
                      # the desk's badge on every page counts open tickets by their last action, from the index
                      # alone; partial, so that no list by status takes it for a better way in
                      Index("ix_tickets_open_last_action", "last_action",
                            sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")))
    id: Mapped[int] = mapped_column(primary_key=True)
    mask: Mapped[str] = mapped_column(String(16), unique=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[Status] = mapped_column(_enum(Status, "ticket_status"), default=Status.OPEN)
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "ticket_priority"), default=Priority.NORMAL)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    bucket_id: Mapped[int] = mapped_column(ForeignKey("buckets.id"))
    organization_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id", ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_action: Mapped[LastAction] = mapped_column(_enum(LastAction, "ticket_last_action"), default=LastAction.NEW)
    first_wrote_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    last_wrote_id: Mapped[int | None] = mapped_column(ForeignKey("addresses.id"))
    waiting_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    spam_score: Mapped[float | None] = mapped_column(Float)  # scored once, when the ticket opened (spam/)
    interesting_words: Mapped[list[Any] | None] = mapped_column(JSON)
    spam_training: Mapped[SpamTraining] = mapped_column(_enum(SpamTraining, "spam_training"),
                                                        default=SpamTraining.NONE,
                                                        server_default=SpamTraining.NONE.value)

    group: Mapped[Group] = relationship()
    bucket: Mapped[Bucket] = relationship()
    organization: Mapped[Organization | None] = relationship()
    owner: Mapped[Worker | None] = relationship()
    first_wrote: Mapped[AddressRow | None] = relationship(foreign_keys=[first_wrote_id])
    last_wrote: Mapped[AddressRow | None] = relationship(foreign_keys=[last_wrote_id])
    recipients: Mapped[list[AddressRow]] = relationship(secondary="ticket_recipients", order_by="AddressRow.id")
    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id")


class TicketRecipient(Base):
    __tablename__ = "ticket_recipients"
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """One mail on a ticket, as parsed at the edge, with its raw bytes kept."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("addresses.id"))
    unverified_sender: Mapped[bool] = mapped_column(Boolean, default=False)
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind, "message_kind"), default=MessageKind.INBOUND,
                                              server_default=MessageKind.INBOUND.value)
    author_worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"))
    to_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    headers: Mapped[list[Any]] = deferred(mapped_column(JSON, default=list, nullable=False))
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = deferred(mapped_column(Text, default="", nullable=False))
    defects: Mapped[list[Any]] = mapped_column(JSON, default=list)
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    # sha256 of text, html and attachments: with message_id, what makes two deliveries the same mail
    content_digest: Mapped[str | None] = mapped_column(String(64))

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    sender: Mapped[AddressRow] = relationship()
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.position")


class Blob(Base):
    """Attachment content, stored once per SHA-256 however many messages carry it."""

    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(255), default="application/octet-stream")
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    blob: Mapped[Blob] = relationship()


class ThreadKey(Base):
    """A Message-ID that leads to a ticket: one we received, sent, or saw referenced."""

    __tablename__ = "thread_keys"
    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    origin: Mapped[KeyOrigin] = mapped_column(_enum(KeyOrigin, "thread_key_origin"))


class ParentReference(Base):
    """An id a trusted mail of the ticket answered, and who answered it, whether that id's mail has arrived or not.

    When the mail with that id comes, it is the thread's parent if it was from or to that person
    (core.threads, rule 4b); several tickets waiting for one parent are merged when it arrives. A
    mail answering the same id to or from that person, or from someone that person wrote to there,
    belongs to the ticket too (rule 4c), before that id's mail arrives as after.
    """

    __tablename__ = "parent_references"
    __table_args__ = (Index("ix_parent_references_ticket_id", "ticket_id"),)
    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    referenced_by: Mapped[str] = mapped_column(String(320), primary_key=True)


class MergedMask(Base):
    """The mask of a ticket merged into another: it keeps leading to the ticket that survived."""

    __tablename__ = "merged_masks"
    mask: Mapped[str] = mapped_column(String(16), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SentRecipient(Base):
    """Who one outbound mail went to: answering its Message-ID proves that person, and the per-hour cap counts it."""

    __tablename__ = "sent_recipients"
    __table_args__ = (Index("ix_sent_recipients_ticket_email_at", "ticket_id", "email", "sent_at"),)
    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HelpdeskSecret(Base):
    """A key the daemon made for itself, kept in the database so every process signs alike (reply tokens)."""

    __tablename__ = "helpdesk_secrets"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class SpoolItem(Base):
    """Raw mail acknowledged to its sender and not yet built into a ticket."""

    __tablename__ = "spool"
    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(20))
    mail_from: Mapped[str] = mapped_column(Text, default="")
    rcpt_tos: Mapped[list[Any]] = mapped_column(JSON, default=list)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # a runner claims a row before parsing it (mailgate.spool_claims); another takes it once the lease ran out
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QuarantineItem(Base):
    """Raw mail that could not become a ticket message, kept with the reason."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    quarantined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(20))
    mail_from: Mapped[str] = mapped_column(Text, default="")
    rcpt_tos: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))


class AuditEntry(Base):
    """Who or what changed a ticket, and how."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text, default="")


class GroupMember(Base):
    """A worker belongs to any number of groups; a group's mail goes to its members."""

    __tablename__ = "group_members"
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), primary_key=True)


class OutboxItem(Base):
    """One outbound mail, built and given its Message-ID before anything is sent."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_due", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    purpose: Mapped[str] = mapped_column(String(30))
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_tos: Mapped[list[Any]] = mapped_column(JSON)
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState, "outbox_state"), default=OutboxState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class AutoReplySent(Base):
    """When a sender last got an automatic reply, so two robots cannot answer each other forever."""

    __tablename__ = "auto_replies_sent"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SpamToken(Base):
    """How many trained spam and not-spam mails carried a token; changed only by adding (spam/statistics)."""

    __tablename__ = "spam_tokens"
    token: Mapped[str] = mapped_column(String(80), primary_key=True)
    spam: Mapped[int] = mapped_column(Integer, default=0)
    ham: Mapped[int] = mapped_column(Integer, default=0)


class SpamTotal(Base):
    """How many mails were trained as each verdict (`spam`, `ham`): one row per class."""

    __tablename__ = "spam_totals"
    verdict: Mapped[str] = mapped_column(String(8), primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)


class ImapImport(Base):
    """An IMAP message committed to the spool, by its place on the server, so it is never imported twice.

    finished_at is set once the message was moved or flagged there; a row without it is finished,
    not imported again, on the next poll. Rows of an old UIDVALIDITY are void and deleted.
    """

    __tablename__ = "imap_imports"
    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uid_validity: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobLease(Base):
    """A scheduled job that must run once across daemons: when it is next due, and who holds it until when."""

    __tablename__ = "job_leases"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    holder: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
