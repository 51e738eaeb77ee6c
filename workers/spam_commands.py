"""`postdesk spam MASK`, `notspam MASK` and `spam train|score|stats`: teaching and asking the spam filter."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import Progress

from core.db import Database, open_configured
from core.errors import UnparseableMessage
from core.inbound import Envelope, InboundMessage
from core.models import SpamTraining
from core.settings import DatabaseSettings, SpamSettings
from core.spam_hold import held_tickets
from core.ticket_views import MAX_PAGE_SIZE, held_count
from spam.filter import is_spam, is_trained, score_token_sets
from spam.scoring import SpamScore
from spam.tokens import tokenize
from spam.statistics import token_count, totals
from spam.training import train_mails
from workers.acting import MASKS, cli_actor, print_changes
from workers.app import App
from workers.options import as_worker_option
from workers.output import print_json, print_json_line, print_table
from workers.terminal_text import printable

if TYPE_CHECKING:
    from mailgate.mail_sources import MessageSource

SCORED_TOGETHER = 32  # mails a process scores in one transaction, reading their unknown words together
TRAINING_BATCH = 500  # mails per transaction: a crash loses at most one batch, a batch is one upsert


class SpamGroup(click.Group):
    """`spam train|score|stats ...`, and `spam MASK`: a first argument that is no subcommand is a mask."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        if args and self.get_command(ctx, args[0]) is None and not args[0].startswith("-"):
            return "mark", self.get_command(ctx, "mark"), args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "MASK... [--as WORKER] | review | train | score | stats ...")


@click.group(cls=SpamGroup)
def spam() -> None:
    """Mark a ticket as spam, or train, ask and inspect the spam filter.

    \b
    Examples:
      postdesk spam review                what the filter holds, waiting for a verdict
      postdesk spam XER-83472-879         mark as spam: train it, move it to deleted
      postdesk spam XER-834 ABC-12 --as jane@corp.example
      postdesk notspam XER-83472-879      undo, or release a held ticket: train it as not spam, open it
      postdesk spam train --spam ~/Spam --ham ~/Maildir
      postdesk spam score suspicious.eml ~/Mail/Junk --json
      postdesk spam stats
    """


@spam.command("mark", hidden=True)
@MASKS
@as_worker_option
@click.pass_obj
def mark_spam(app: App, masks: tuple[str, ...], worker_email: str | None) -> None:
    """Train each ticket's first mail as spam and move the ticket to deleted."""
    _mark(app, masks, worker_email, SpamTraining.SPAM)


@click.command("notspam")
@MASKS
@as_worker_option
@click.pass_obj
def notspam(app: App, masks: tuple[str, ...], worker_email: str | None) -> None:
    """Train tickets' first mail as not spam and open them again: deleted ones, or ones the filter held.

    A held ticket is released as if its mail had just arrived: its workers are notified now.

    \b
    Examples:
      postdesk notspam XER-83472-879
      postdesk notspam XER-834 ABC-12 --as jane@corp.example
    """
    _mark(app, masks, worker_email, SpamTraining.NOT_SPAM)


def _mark(app: App, masks: tuple[str, ...], worker_email: str | None, verdict: SpamTraining) -> None:
    print_changes(app.desk().judge_spam(masks, verdict, cli_actor(worker_email)))


@spam.command("train")
@click.option("--spam", "spam_path", type=click.Path(exists=True, path_type=Path), help="Spam: Maildir, mbox or folder.")
@click.option("--ham", "ham_path", type=click.Path(exists=True, path_type=Path), help="Not spam: Maildir, mbox or folder.")
@click.pass_obj
def train(app: App, spam_path: Path | None, ham_path: Path | None) -> None:
    """Train the filter on whole mailboxes of spam and of wanted mail (each mail counts once per run).

    \b
    Example:
      postdesk spam train --spam ~/Mail/Junk --ham ~/Mail/INBOX.mbox
    """
    if spam_path is None and ham_path is None:
        raise click.UsageError("give --spam PATH, --ham PATH, or both")
    db = app.database()
    for path, verdict in ((spam_path, SpamTraining.SPAM), (ham_path, SpamTraining.NOT_SPAM)):
        if path is None:
            continue
        trained, unreadable = _train_path(db, path, verdict)
        click.echo(f"trained {trained} as {verdict.value} from {path}"
                   + (f" ({unreadable} unreadable, skipped)" if unreadable else ""))


def _train_path(db: Database, path: Path, verdict: SpamTraining) -> tuple[int, int]:
    from mailgate.mail_sources import count_messages  # the mail parser is loaded only by commands that read mail

    total = count_messages(path)
    mails, skipped = _parsed(path)
    trained = 0
    with Progress(console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(f"training {verdict.value} from {path.name}", total=total)
        while batch := list(islice(mails, TRAINING_BATCH)):
            with db.write() as session:
                trained += train_mails(session, batch, verdict)
            progress.update(task, completed=trained + skipped[0])
    return trained, skipped[0]


def _parsed(path: Path) -> tuple[Iterator[InboundMessage], list[int]]:
    """The readable mails under path, and a counter of the unreadable ones skipped."""
    from mailgate.mail_sources import read_messages
    from mailgate.parse import parse_message

    skipped = [0]

    def mails() -> Iterator[InboundMessage]:
        for sourced in read_messages(path):
            try:
                yield parse_message(sourced.raw, Envelope("spam-train"))
            except UnparseableMessage:
                skipped[0] += 1

    return mails(), skipped


@spam.command("score")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...",
                type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per mail, in input order: {"file", "score", "spam", "interesting_words"}.')
@click.pass_obj
def score(app: App, paths: tuple[Path, ...], as_json: bool) -> None:
    """Score mail without filing it: each mail's spam probability and the words behind it.

    Each PATH is a mail file, a folder of them, a Maildir or an mbox; every mail in them is scored, in
    order, by this one command (as bogofilter's bulk mode; mails are parsed on every core). A mail that
    cannot be read is reported on its line and makes the exit status 1; the others are still scored.

    \b
    Examples:
      postdesk spam score message.eml
      postdesk spam score ~/Mail/Junk incoming.mbox --json
    """
    from mailgate.mail_sources import message_sources
    from mailgate.parse_pool import mapped_in_pool

    settings, unreadable, scored = app.settings.spam, 0, 0
    sources = [source for path in paths for source in message_sources(path)]
    with app.database().read() as session:
        if not is_trained(totals(session), settings):
            click.echo(f"postdesk: the filter is not trained yet (needs {settings.min_training} mails of each "
                       "class, see `postdesk spam stats`); scores are neutral", err=True)
    scorer = _Scorer(app.settings.database, settings)
    try:
        groups = [sources[start:start + SCORED_TOGETHER] for start in range(0, len(sources), SCORED_TOGETHER)]
        for results in mapped_in_pool(scorer, groups, mails_per_item=SCORED_TOGETHER):
            for origin, result in results:
                if isinstance(result, str):
                    unreadable += 1
                    _print_unreadable(origin, result, as_json)
                    continue
                _print_score(origin, result, settings, as_json, detailed=len(sources) == 1 and len(results) == 1)
                scored += 1
    finally:
        _forget_database()
    if unreadable:
        raise click.ClickException(f"{unreadable} of {unreadable + scored} mails could not be read")


@dataclass(frozen=True)
class _Scorer:
    """Reads, parses, tokenizes and scores one source's mails in whichever process runs it.

    All of a mail's work is done where it is parsed, so the process handing out the work only
    prints: with the scoring there, it was the one bottleneck. Each process opens the database
    itself, once (a pool's workers are forked: a connection is never shared across processes).
    """

    database: DatabaseSettings
    settings: SpamSettings

    def __call__(self, sources: Sequence[MessageSource]) -> list[tuple[str, SpamScore | str]]:
        from mailgate.mail_sources import messages_of
        from mailgate.parse import parse_message

        read: list[tuple[str, frozenset[str] | str]] = []
        for sourced in (sourced for source in sources for sourced in messages_of(source)):
            try:
                read.append((sourced.origin, tokenize(parse_message(sourced.raw, Envelope("spam-score")))))
            except UnparseableMessage as exc:
                read.append((sourced.origin, str(exc)))
        with _database(self.database).read() as session:
            scores = iter(score_token_sets(session, [t for _, t in read if not isinstance(t, str)], self.settings))
        return [(origin, tokens if isinstance(tokens, str) else next(scores)) for origin, tokens in read]


_OPENED: dict[int, tuple[DatabaseSettings, Database]] = {}  # per process id: a forked worker opens its own


def _database(settings: DatabaseSettings) -> Database:
    opened = _OPENED.get(os.getpid())
    if opened is None or opened[0] != settings:
        _forget_database()
        opened = _OPENED[os.getpid()] = (settings, open_configured(settings))
    return opened[1]


def _forget_database() -> None:
    opened = _OPENED.pop(os.getpid(), None)
    if opened is not None:
        opened[1].dispose()


def _print_score(origin: str, result: SpamScore, settings: SpamSettings, as_json: bool, *, detailed: bool) -> None:
    if as_json:
        print_json_line({"file": origin, "score": round(result.score, 4), "spam": is_spam(result, settings),
                         "interesting_words": result.words_json()})
    elif detailed:
        click.echo(f"spam score: {result.score:.2%}")
        for word in result.words:
            click.echo(f"  {word.probability:6.4f}  {printable(word.word)}")
    else:
        click.echo(f"{result.score:7.2%}  {'spam' if is_spam(result, settings) else 'ham ':4}  {printable(origin)}")


def _print_unreadable(origin: str, reason: str, as_json: bool) -> None:
    if as_json:
        print_json_line({"file": origin, "error": reason})
    else:
        click.echo(f"{'-':>7}  {'?':4}  {printable(origin)}: {printable(reason)}")


@spam.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def stats(app: App, as_json: bool) -> None:
    """How much the filter has learnt, and whether that is enough to score.

    \b
    Examples:
      postdesk spam stats
      postdesk spam stats --json
    """
    with app.database().read() as session:
        trained = totals(session)
        tokens = token_count(session)
        held = held_count(session.connection())
    ready = is_trained(trained, app.settings.spam)
    figures = {"spam_messages": trained.spam, "ham_messages": trained.ham, "tokens": tokens,
               "min_training": app.settings.spam.min_training, "ready": ready, "held": held,
               "threshold": app.settings.spam.threshold, "retention_days": app.settings.spam.retention_days}
    if as_json:
        print_json(figures)
        return
    click.echo(f"trained: {trained.spam} spam, {trained.ham} not spam; {tokens} tokens")
    click.echo("scoring: ready" if ready else
               f"scoring: not yet (needs {app.settings.spam.min_training} of each; new tickets score 0.5)")
    click.echo(f"held for review: {held} (above {app.settings.spam.threshold:.0%}; `postdesk spam review`, "
               f"purged unjudged after {app.settings.spam.retention_days:g} days)")


REVIEW_COLUMNS = ["mask", "score", "held", "purged", "from", "subject", "strongest words"]


@spam.command("review")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE_SIZE), default=MAX_PAGE_SIZE, show_default=True,
              help="Tickets per page.")
@click.option("--page", type=click.IntRange(1), default=1, show_default=True, help="Which page.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON objects with stable field names.")
@click.pass_obj
def review(app: App, limit: int, page: int, as_json: bool) -> None:
    """List the tickets the filter holds as spam, the surest spam last; nobody was told of them.

    `postdesk notspam MASK` releases one (trained as not spam, its workers notified now);
    `postdesk spam MASK` deletes it (trained as spam). Unjudged, they are purged after [spam] retention_days.

    \b
    Examples:
      postdesk spam review
      postdesk notspam XER-83472-879
    """
    with app.reader() as conn:
        rows = held_tickets(conn, app.settings.spam.retention_days, limit=limit, page=page)
    if as_json:
        print_json(rows)
        return
    print_table(REVIEW_COLUMNS, [[row["mask"], f"{row['spam_score'] or 0:.2%}", row["updated"][:16].replace("T", " "),
                                  row["purge_due"][:10], row["first_wrote"] or "-", row["subject"],
                                  ", ".join(w["word"] for w in (row["interesting_words"] or [])[:3])]
                                 for row in rows])
