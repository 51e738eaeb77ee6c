"""Import-order benchmark: does `postdesk import` of the same mail give the same tickets forward and reversed?

    python bench/import_order.py [--corpus PATH] [--show N] [--keep EMPTY_FOLDER]

Reads every message under the corpus once (mail_sources.read_messages, as `postdesk import PATH`
does: each file of a folder is one message), then imports that list in-process, silently
(mailgate.importer.import_messages), forward into one fresh SQLite database and reversed into
another, both in a temporary folder (or in --keep, to look at them afterwards). It compares the two databases: which mails each ticket holds
(stored Message-IDs, messages.message_id) and who its recipients are (ticket_recipients ->
addresses.email). A mail whose Message-ID another mail already had is stored under a key made from
its id and content digest; so that the arrival order of such twins does not hide a real difference,
every stored row is also known by (Message-ID as written, content digest), and groupings are
compared on both.

Printed: messages read; filed, duplicates and quarantined per run; tickets per run and import time
(msg/s); tickets that differ; and for each difference (the tickets of both runs that share mails),
up to --show of them: every mail involved (stored key, file, From, In-Reply-To/References, List-Id,
the ticket each run put it in, whether each run flagged it unverified) and a diagnosis. The exit code
is 1 when any ticket differs.

Figures (2026-11-30 22:30, ../shared/corpora/mail, SQLite, in-process, CI running beside it):
1,496 messages read (each file one message; 743 do not parse), 49 Message-IDs carried by different
mails. Forward: filed 674, duplicates 69, quarantined 753; 660 tickets; 20.2 s, 74 msg/s. Reversed:
the same counts and 660 tickets; 18.3 s, 82 msg/s. Tickets that differ: none. By stored key alone 84
tickets have no equal: a reused id stays with whichever mail came first and the other gets a key of
its own (`@reused-message-id.postdesk.invalid`); they group the same.

Before the duplicate digest took in sender, To, Cc and subject (body and attachments only), 7 groups
differed, all for one cause: files with the same Message-ID and body but other parties (ruby-mail
rfc2822/example03 and example11, spamassassin dkim/*.msg, thunderbird bugmail*...): the first read
was kept and the others dropped as duplicates, so a ticket's sender and recipients followed the order.

Figures (2026-12-01, --corpus of SpamAssassin's 4,149 ham files, SQLite): filed 4,146, quarantined 3,
3,519 tickets forward and reversed, none differs. Before rule 4c asked who wrote to whom (it asked
whether the sender was one of the ticket's recipients by then, and held only until the answered mail
arrived), 3,629 tickets forward and 3,602 reversed, 69 groups differing: list mail brings in no
recipients, so "to the one who answered" held in one order and "one of its recipients" not in the other.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# `python bench/import_order.py` puts bench/ first on sys.path, where bench/spam.py would hide the spam package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlalchemy import select  # noqa: E402

from core.db import Database, open_database  # noqa: E402
from core.errors import UnparseableMessage  # noqa: E402
from core.inbound import InboundMessage  # noqa: E402
from core.models import AddressRow, Message, QuarantineItem, Ticket, TicketRecipient  # noqa: E402
from core.pipeline import reused_id_key  # noqa: E402
from core.schema import upgrade  # noqa: E402
from core.settings import load_settings  # noqa: E402
from core.tickets import content_digest  # noqa: E402
from mailgate.importer import IMPORT_ENVELOPE, ImportReport, import_messages  # noqa: E402
from mailgate.mail_sources import SourcedMessage, read_messages  # noqa: E402
from mailgate.parse import parse_message  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "mail"
NO_SIZE_LIMIT = 1024 * 1024 * 1024  # every corpus mail is imported, none skipped as too large
Identity = tuple[str, str]  # (Message-ID as written or as parse_message made it, content digest)


# --- what was read ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One mail read from the corpus, as parse_message sees it (None: it does not parse)."""

    origin: str
    raw_sha: str
    parsed: InboundMessage | None
    digest: str = ""

    @property
    def identity(self) -> Identity | None:
        return None if self.parsed is None else (self.parsed.message_id, self.digest)


@dataclass
class Corpus:
    """Every mail read, and the ways a stored row or quarantined raw leads back to it."""

    sources: list[Source]
    by_identity: dict[Identity, list[Source]] = field(default_factory=dict)
    by_raw: dict[str, list[Source]] = field(default_factory=dict)
    reused_keys: dict[str, str] = field(default_factory=dict)  # reused_id_key -> Message-ID as written
    ids_with_contents: dict[str, set[str]] = field(default_factory=dict)  # Message-ID -> its digests

    @classmethod
    def of(cls, messages: Sequence[SourcedMessage], root: Path) -> Corpus:
        corpus = cls([_source(m, root) for m in messages])
        for source in corpus.sources:
            corpus.by_raw.setdefault(source.raw_sha, []).append(source)
            if source.identity is not None:
                message_id, digest = source.identity
                corpus.by_identity.setdefault(source.identity, []).append(source)
                corpus.reused_keys[reused_id_key(message_id, digest)] = message_id
                corpus.ids_with_contents.setdefault(message_id, set()).add(digest)
        return corpus

    def identity_of(self, stored_key: str, digest: str | None) -> Identity:
        """The order-free name of a stored row: the id as written (not the key made for a reused one)."""
        return self.reused_keys.get(stored_key, stored_key), digest or ""

    def first(self, identity: Identity) -> Source | None:
        found = self.by_identity.get(identity)
        return found[0] if found else None


def _source(message: SourcedMessage, root: Path) -> Source:
    origin = message.origin.removeprefix(f"{root}/")
    sha = hashlib.sha256(message.raw).hexdigest()
    try:
        parsed = parse_message(message.raw, IMPORT_ENVELOPE)
    except UnparseableMessage:
        return Source(origin, sha, None)
    return Source(origin, sha, parsed, content_digest(parsed))


# --- one import ------------------------------------------------------------------------------------

@dataclass
class StoredMail:
    key: str  # messages.message_id
    identity: Identity
    raw_sha: str  # which of the files with this identity the run kept
    ticket: str  # the ticket's mask
    unverified: bool


@dataclass
class Run:
    """One import of the list into a fresh database, and what it left there."""

    name: str
    report: ImportReport
    seconds: float
    mails: dict[Identity, StoredMail]
    members: dict[str, set[Identity]]  # mask -> its mails
    recipients: dict[str, set[str]]  # mask -> its recipients' addresses
    quarantined: dict[str, str]  # raw sha256 -> reason

    @property
    def rate(self) -> float:
        return self.report.read / self.seconds if self.seconds else 0.0


def write_settings(folder: Path, db_url: str) -> Path:
    """The shipped defaults, as the test kit writes them, with this database and no size limit."""
    path = folder / "settings.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n\n'
        f'[smtp]\nlisten = "127.0.0.1:2525"\nhostname = "postdesk.test"\nmax_message_size = {NO_SIZE_LIMIT}\n\n'
        '[helpdesk]\ndomains = ["example.com"]\naddresses = ["help@other.test"]\n'
        'default_group = "Support"\ndefault_address = "support@example.com"\n\n'
        '[relay]\nhost = "127.0.0.1"\nport = 2526\n\n'
        '[logging]\nlevel = "WARNING"\n')
    return path


def import_into_fresh_database(name: str, messages: Iterable[SourcedMessage], folder: Path, corpus: Corpus) -> Run:
    folder.mkdir()
    settings = load_settings(write_settings(folder, f"sqlite:///{folder / 'postdesk.db'}"))
    db = open_database(settings.database.url)
    try:
        upgrade(db)
        started = time.perf_counter()
        report = import_messages(db, settings, messages, notify=False)
        seconds = time.perf_counter() - started
        return _what_was_filed(name, db, report, seconds, corpus)
    finally:
        db.dispose()


def _what_was_filed(name: str, db: Database, report: ImportReport, seconds: float, corpus: Corpus) -> Run:
    run = Run(name, report, seconds, {}, defaultdict(set), defaultdict(set), {})
    with db.read() as session:
        rows = session.execute(select(Message.message_id, Message.content_digest, Message.unverified_sender,
                                      Ticket.mask, Message.raw).join(Ticket, Ticket.id == Message.ticket_id))
        for key, digest, unverified, mask, raw in rows:
            identity = corpus.identity_of(key, digest)
            run.mails[identity] = StoredMail(key, identity, hashlib.sha256(raw).hexdigest(), mask, unverified)
            run.members[mask].add(identity)
        for mask, email in session.execute(select(Ticket.mask, AddressRow.email)
                                           .join(TicketRecipient, TicketRecipient.ticket_id == Ticket.id)
                                           .join(AddressRow, AddressRow.id == TicketRecipient.address_id)):
            run.recipients[mask].add(email)
        for raw, reason in session.execute(select(QuarantineItem.raw, QuarantineItem.reason)):
            run.quarantined[hashlib.sha256(raw).hexdigest()] = reason
    return run


# --- the comparison --------------------------------------------------------------------------------

@dataclass
class Difference:
    """Tickets of both runs that share mails, where the runs group those mails or their recipients differently."""

    forward: list[str]  # masks
    reverse: list[str]
    mails: set[Identity]


def differences(forward: Run, reverse: Run) -> list[Difference]:
    """Connected groups of tickets (linked by shared mails) whose grouping or recipients differ."""
    found = []
    seen: set[str] = set()
    for mask in sorted(forward.members, key=lambda m: min(forward.members[m])):
        if mask in seen:
            continue
        group = _linked(mask, forward, reverse)
        seen.update(group.forward)
        if not _same(group, forward, reverse):
            found.append(group)
    only_reverse = set(reverse.members) - {m for d in found for m in d.reverse} - _linked_reverse(forward, reverse)
    for mask in sorted(only_reverse):
        found.append(Difference([], [mask], set(reverse.members[mask])))
    return found


def _linked(start: str, forward: Run, reverse: Run) -> Difference:
    group = Difference([], [], set())
    todo_forward, todo_reverse = [start], []
    while todo_forward or todo_reverse:
        for run, todo, masks, other_todo, other in ((forward, todo_forward, group.forward, todo_reverse, reverse),
                                                    (reverse, todo_reverse, group.reverse, todo_forward, forward)):
            while todo:
                mask = todo.pop()
                if mask in masks:
                    continue
                masks.append(mask)
                for identity in run.members[mask] - group.mails:
                    group.mails.add(identity)
                    if identity in other.mails and other.mails[identity].ticket not in other_todo:
                        other_todo.append(other.mails[identity].ticket)
    return group


def _linked_reverse(forward: Run, reverse: Run) -> set[str]:
    return {reverse.mails[i].ticket for i in forward.mails if i in reverse.mails}


def _same(group: Difference, forward: Run, reverse: Run) -> bool:
    if len(group.forward) != 1 or len(group.reverse) != 1:
        return False
    f, r = group.forward[0], group.reverse[0]
    return forward.members[f] == reverse.members[r] and forward.recipients[f] == reverse.recipients[r]


def key_differences(forward: Run, reverse: Run) -> int:
    """Tickets whose set of stored keys (messages.message_id) has no equal in the other run."""
    keys_f = {frozenset(forward.mails[i].key for i in ms) for ms in forward.members.values()}
    keys_r = {frozenset(reverse.mails[i].key for i in ms) for ms in reverse.members.values()}
    return len(keys_f ^ keys_r)


# --- the diagnosis ---------------------------------------------------------------------------------

def diagnose(group: Difference, forward: Run, reverse: Run, corpus: Corpus) -> list[str]:
    """Readings of why the runs differ; each names the mails it is about."""
    readings = []
    for identity in sorted(group.mails):
        readings += _twin_readings(identity, corpus)
        if identity not in forward.mails or identity not in reverse.mails:
            missing = "forward" if identity not in forward.mails else "reverse"
            readings.append(f"{identity[0]} is not filed in the {missing} run (duplicate or quarantined there)")
        if len(corpus.ids_with_contents.get(identity[0], ())) > 1:
            readings.append(f"{identity[0]} is carried by {len(corpus.ids_with_contents[identity[0]])} mails of "
                            "different content: the first read keeps it, the others get keys of their own")
    members = {i[0] for i in group.mails}
    for identity in sorted(group.mails):
        source = corpus.first(identity)
        if source is None or source.parsed is None:
            continue
        readings += _reply_readings(source.parsed, members, group, forward, reverse, corpus)
    readings += _recipient_readings(group, forward, reverse)
    return list(dict.fromkeys(readings)) or ["no reading found: compare the tickets by hand"]


_SEEN_FIELDS = {"From": lambda m: m.sender.email, "To": lambda m: sorted(a.email for a in m.to),
                "Cc": lambda m: sorted(a.email for a in m.cc), "Subject": lambda m: m.subject}


def _twin_readings(identity: Identity, corpus: Corpus) -> list[str]:
    """Files with the same Message-ID and content but other header fields: only the first read is stored."""
    twins = [s for s in corpus.by_identity.get(identity, []) if s.parsed is not None]
    differing = [name for name, value in _SEEN_FIELDS.items() if len({str(value(t.parsed)) for t in twins}) > 1]
    if len(twins) < 2 or not differing:
        return []
    return [f"{identity[0]}: {len(twins)} files, same Message-ID and content digest, other {'/'.join(differing)} "
            f"({', '.join(t.origin for t in twins)}): the first read is stored, the rest are duplicates"]


def _reply_readings(message: InboundMessage, members: set[str], group: Difference, forward: Run, reverse: Run,
                    corpus: Corpus) -> list[str]:
    readings = []
    if message.mailing_list:
        readings.append(f"{message.message_id} came through the list {message.mailing_list}")
    for parent_id in message.thread_ids:
        parents = [s for d in corpus.ids_with_contents.get(parent_id, ()) for s in
                   corpus.by_identity.get((parent_id, d), [])]
        if not parents:
            if parent_id in members or any(parent_id in s.parsed.thread_ids for s in _sources(members, corpus)
                                           if s.parsed is not None and s.parsed.message_id != message.message_id):
                readings.append(f"{message.message_id} answers {parent_id}, which is not in the corpus "
                                "(its siblings name it too)")
            continue
        parent = parents[0].parsed
        assert parent is not None
        party = {parent.sender.email, *(a.email for a in parent.to + parent.cc)}
        if message.sender.email not in party:
            readings.append(f"{message.message_id} from {message.sender.email} answers {parent_id} "
                            f"({parents[0].origin}), to which the sender was no party (from {parent.sender.email})")
    return readings


def _sources(ids: set[str], corpus: Corpus) -> list[Source]:
    return [s for s in corpus.sources if s.parsed is not None and s.parsed.message_id in ids]


def _recipient_readings(group: Difference, forward: Run, reverse: Run) -> list[str]:
    every_f = set().union(*(forward.recipients[m] for m in group.forward))
    every_r = set().union(*(reverse.recipients[m] for m in group.reverse))
    readings = []
    if every_f - every_r:
        readings.append(f"recipients only forward: {', '.join(sorted(every_f - every_r))}")
    if every_r - every_f:
        readings.append(f"recipients only reversed: {', '.join(sorted(every_r - every_f))}")
    return readings


def show(group: Difference, forward: Run, reverse: Run, corpus: Corpus) -> None:
    masks = [", ".join(sorted(masks)) or "(none)" for masks in (group.forward, group.reverse)]
    print(f"\n- forward {masks[0]} | reversed {masks[1]}")
    for identity in sorted(group.mails, key=lambda i: _date_of(i, corpus)):
        for line in _mail_lines(identity, forward, reverse, corpus):
            print("    " + line)
    for mask in group.forward:
        print(f"    recipients forward {mask}: {', '.join(sorted(forward.recipients[mask]))}")
    for mask in group.reverse:
        print(f"    recipients reversed {mask}: {', '.join(sorted(reverse.recipients[mask]))}")
    for reading in diagnose(group, forward, reverse, corpus):
        print(f"    why: {reading}")


def _date_of(identity: Identity, corpus: Corpus) -> str:
    source = corpus.first(identity)
    date = source.parsed.date if source is not None and source.parsed is not None else None
    return date.isoformat() if date else ""


def _mail_lines(identity: Identity, forward: Run, reverse: Run, corpus: Corpus) -> list[str]:
    """One line per file with this identity: where each run put it (`dup`: the run kept its twin)."""
    sources = corpus.by_identity.get(identity, [])
    if not sources:
        where = " ".join(f"{run.name[0]}={_placed(run, identity, None)}" for run in (forward, reverse))
        return [f"{identity[0]} [{where}] (not in the corpus as read)"]
    lines = []
    for source in sources:
        message = source.parsed
        assert message is not None
        where = " ".join(f"{run.name[0]}={_placed(run, identity, source)}" for run in (forward, reverse))
        answers = f" re {' '.join(message.thread_ids)}" if message.thread_ids else ""
        listed = f" list {message.mailing_list}" if message.mailing_list else ""
        people = ", ".join(a.email for a in message.to + message.cc)
        lines.append(f"{message.message_id} [{where}] {source.origin} from {message.sender.email} "
                     f"to {people or '-'}{answers}{listed}")
    return lines


def _placed(run: Run, identity: Identity, source: Source | None) -> str:
    mail = run.mails.get(identity)
    if mail is None:
        return "-"
    if source is not None and mail.raw_sha != source.raw_sha:
        return "dup"
    return mail.ticket + ("(unverified)" if mail.unverified else "")


# --- the run ---------------------------------------------------------------------------------------

def summary(run: Run) -> str:
    stats = run.report.stats
    return (f"{run.name}: filed {stats.filed}, duplicates {stats.duplicates}, quarantined {stats.quarantined}, "
            f"too large {len(run.report.too_large)}; {len(run.members)} tickets; "
            f"{run.seconds:.1f} s, {run.rate:.0f} msg/s")


def quarantine_differences(forward: Run, reverse: Run, corpus: Corpus) -> list[str]:
    lines = []
    for sha in sorted(set(forward.quarantined) ^ set(reverse.quarantined)):
        run = "forward" if sha in forward.quarantined else "reverse"
        origins = ", ".join(s.origin for s in corpus.by_raw.get(sha, []))
        lines.append(f"only {run} quarantined {origins}: {(forward.quarantined | reverse.quarantined)[sha][:100]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--show", type=int, default=30, help="differences shown in full")
    parser.add_argument("--keep", type=Path, help="an empty folder to leave the two databases in")
    args = parser.parse_args(argv)
    corpus_path = args.corpus.resolve()
    messages = list(read_messages(corpus_path))
    corpus = Corpus.of(messages, corpus_path)
    print(f"{corpus_path}: {len(messages)} messages read, "
          f"{sum(s.parsed is None for s in corpus.sources)} unparseable, "
          f"{sum(len(d) > 1 for d in corpus.ids_with_contents.values())} Message-IDs used by different mails")
    with tempfile.TemporaryDirectory(prefix="postdesk-import-order-") as temp:
        folder = args.keep or Path(temp)
        forward = import_into_fresh_database("forward", messages, folder / "forward", corpus)
        print(summary(forward))
        reverse = import_into_fresh_database("reverse", list(reversed(messages)), folder / "reverse", corpus)
        print(summary(reverse))
    found = differences(forward, reverse)
    print(f"tickets that differ: {sum(len(d.forward) for d in found)} forward, "
          f"{sum(len(d.reverse) for d in found)} reversed, in {len(found)} groups; "
          f"by stored key (messages.message_id) alone: {key_differences(forward, reverse)} tickets without an equal")
    for line in quarantine_differences(forward, reverse, corpus):
        print(line)
    for group in found[:args.show]:
        show(group, forward, reverse, corpus)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
