"""`postdesk spam MASK`, `notspam MASK` and `spam train|score|stats`: teaching and asking the spam filter."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
import click
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, select

from core.db import Database
from core.errors import UnparseableMessage
from core.inbound import Envelope, InboundMessage
from core.models import SpamToken, SpamTraining, Ticket
from spam.filter import is_trained, score_mail
from spam.statistics import totals
from spam.training import Lesson, mark_ticket, train_mails
from workers.acting import MASKS, Acting, act_on_tickets
from workers.app import App
from workers.options import as_worker_option
from workers.output import print_json
from workers.terminal_text import printable

TRAINING_BATCH = 500  # mails per transaction: a crash loses at most one batch, a batch is one upsert


class SpamGroup(click.Group):
    """`spam train|score|stats ...`, and `spam MASK`: a first argument that is no subcommand is a mask."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        if args and self.get_command(ctx, args[0]) is None and not args[0].startswith("-"):
            return "mark", self.get_command(ctx, "mark"), args
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "MASK... [--as WORKER] | train | score | stats ...")


@click.group(cls=SpamGroup)
def spam() -> None:
    """Mark a ticket as spam, or train, ask and inspect the spam filter.

    \b
    Examples:
      postdesk spam XER-83472-879         mark as spam: train it, move it to deleted
      postdesk spam XER-834 ABC-12 --as jane@corp.example
      postdesk notspam XER-83472-879      undo: train it as not spam, reopen it
      postdesk spam train --spam ~/Spam --ham ~/Maildir
      postdesk spam score suspicious.eml --json
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
    """Train tickets' first mail as not spam and restore the tickets from deleted.

    \b
    Examples:
      postdesk notspam XER-83472-879
      postdesk notspam XER-834 ABC-12 --as jane@corp.example
    """
    _mark(app, masks, worker_email, SpamTraining.NOT_SPAM)


def _mark(app: App, masks: tuple[str, ...], worker_email: str | None, verdict: SpamTraining) -> None:
    def change(acting: Acting, ticket: Ticket) -> str:
        lesson = mark_ticket(acting.session, ticket, verdict, actor=acting.actor, now=acting.now)
        return f"{_LEARNT[lesson].format(verdict=verdict.value)}, ticket {ticket.status.value}"

    act_on_tickets(app, masks, worker_email, change, deleted_ok=True)


_LEARNT = {
    Lesson.LEARNT: "trained {verdict}",
    Lesson.ALREADY_KNOWN: "already trained {verdict}, nothing counted again",
    Lesson.NO_CUSTOMER_MAIL: "no customer mail to learn from (a worker opened it), the filter is unchanged",
}


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
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help='Print {"score": 0.9731, "interesting_words": [...]}.')
@click.pass_obj
def score(app: App, file: Path, as_json: bool) -> None:
    """Score one mail file without filing it: its spam probability and the words behind it.

    \b
    Example:
      postdesk spam score message.eml --json
    """
    from mailgate.parse import parse_message

    mail = parse_message(file.read_bytes(), Envelope("spam-score"))
    with app.database().read() as session:
        result = score_mail(session, mail, app.settings.spam)
    if not result.trained:
        click.echo(f"postdesk: the filter is not trained yet (needs {app.settings.spam.min_training} mails of "
                   "each class, see `postdesk spam stats`); the score is neutral", err=True)
    if as_json:
        print_json({"score": round(result.score, 4), "interesting_words": result.words_json()})
        return
    click.echo(f"spam score: {result.score:.2%}")
    for word in result.words:
        click.echo(f"  {word.probability:6.4f}  {printable(word.word)}")


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
        tokens = session.scalar(select(func.count()).select_from(SpamToken)) or 0
    ready = is_trained(trained, app.settings.spam)
    figures = {"spam_messages": trained.spam, "ham_messages": trained.ham, "tokens": tokens,
               "min_training": app.settings.spam.min_training, "ready": ready}
    if as_json:
        print_json(figures)
        return
    click.echo(f"trained: {trained.spam} spam, {trained.ham} not spam; {tokens} tokens")
    click.echo("scoring: ready" if ready else
               f"scoring: not yet (needs {app.settings.spam.min_training} of each; new tickets score 0.5)")
