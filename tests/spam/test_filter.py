"""The spam filter on a real database: training moves scores, verdicts are reversible, odd mail scores."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from core.db import Database
from core.inbound import Envelope, InboundMessage
from core.models import SpamToken, SpamTraining, Ticket
from core.settings import Settings, SpamSettings
from mailgate.parse import parse_message
from spam.filter import score_mail
from spam.statistics import totals, token_counts
from spam.training import train_mails, train_ticket
from testkit import make_mail

SPAMMY = ("Cheap vi4gra and s0ftware, click http://pills.example.biz/buy now, limited offer, "
          "winner cash prize guaranteed")
HAMMY = "The invoice for the printer repair is attached; could you confirm the delivery address for Monday?"
FILTER = SpamSettings(min_training=3, threshold=0.99)


def parsed(mail: EmailMessage) -> InboundMessage:
    return parse_message(mail.as_bytes(), Envelope("test"))


def spam_mail(n: int) -> InboundMessage:
    return parsed(make_mail(subject=f"WINNER cash offer {n}", body=f"{SPAMMY} {n}", sender="promo@pills.example.biz"))


def ham_mail(n: int) -> InboundMessage:
    return parsed(make_mail(subject=f"Printer repair invoice {n}", body=f"{HAMMY} {n}",
                            sender="alice@customer.test"))


def trained(database: Database, spams: int = 4, hams: int = 4) -> None:
    with database.write() as session:
        train_mails(session, [spam_mail(n) for n in range(spams)], SpamTraining.SPAM)
        train_mails(session, [ham_mail(n) for n in range(hams)], SpamTraining.NOT_SPAM)


def test_an_untrained_filter_says_so_and_scores_neutrally(database: Database) -> None:
    with database.write() as session:
        train_mails(session, [spam_mail(1)], SpamTraining.SPAM)
    with database.read() as session:
        result = score_mail(session, spam_mail(2), FILTER)
    assert (result.score, result.words, result.trained) == (0.5, (), False)


def test_training_moves_the_score_the_right_way(database: Database) -> None:
    trained(database)
    with database.read() as session:
        spammy, hammy = score_mail(session, spam_mail(9), FILTER), score_mail(session, ham_mail(9), FILTER)
    assert spammy.score > 0.99 and hammy.score < 0.01
    assert 0.0001 <= hammy.score and spammy.score <= 0.9999
    assert {"vi4gra", "s0ftware", "url:pills.example.biz"} & {w.word for w in spammy.words}
    assert all(w.probability > 0.5 for w in spammy.words) and len(spammy.words) <= FILTER.interesting_words


def test_more_spam_training_raises_a_word_s_spam_probability(database: Database) -> None:
    trained(database)
    mixed = parsed(make_mail(subject="Printer offer", body=f"{HAMMY} limited offer winner"))
    with database.read() as session:
        before = score_mail(session, mixed, FILTER).score
    with database.write() as session:
        train_mails(session, [mixed] * 3, SpamTraining.SPAM)
    with database.read() as session:
        assert score_mail(session, mixed, FILTER).score > before


def test_odd_mail_is_scored_without_error(database: Database) -> None:
    trained(database)
    no_words = make_mail(subject="", body="")
    html_only = make_mail(subject="", body="")
    html_only.set_content("<html><body><p>Cheap <b>vi4gra</b> <a href='http://pills.example.biz/x'>click</a>"
                          "</p><script>x()</script></body></html>", subtype="html")
    attachment_only = make_mail(subject="", body="", attachments=[("scan.pdf", "application/pdf", b"%PDF-1.4 \x00\xff")])
    charset = make_mail(subject="Счёт за ремонт принтера", body="Добрый день, счёт приложен. Спасибо!",
                        charset="koi8-r")
    with database.read() as session:
        scores = {name: score_mail(session, parsed(mail), FILTER) for name, mail in
                  [("no words", no_words), ("html", html_only), ("attachment", attachment_only), ("koi8-r", charset)]}
    assert all(0.0001 <= s.score <= 0.9999 for s in scores.values())
    assert scores["html"].score > 0.9  # the HTML was read as text
    assert "счёт" in {w for w in _tokens(parsed(charset))}


def _tokens(mail: InboundMessage) -> frozenset[str]:
    from spam.tokens import tokenize

    return tokenize(mail)


def test_verdict_changes_move_counts_once_and_are_reversible(database: Database, settings: Settings) -> None:
    from mailgate.deliver import deliver

    deliver(database, settings, make_mail(subject="Printer repair", body=HAMMY).as_bytes(),
            Envelope("deliver", "", ("support@example.com",)))
    with database.write() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.spam_training is SpamTraining.NONE
        assert train_ticket(session, ticket, SpamTraining.SPAM)
        assert not train_ticket(session, ticket, SpamTraining.SPAM)  # the same verdict again counts nothing
    with database.read() as session:
        assert (totals(session).spam, totals(session).ham) == (1, 0)
        assert token_counts(session, {"printer"})["printer"].spam == 1
    with database.write() as session:
        ticket = session.scalars(select(Ticket)).one()
        train_ticket(session, ticket, SpamTraining.NOT_SPAM)
    with database.read() as session:
        assert (totals(session).spam, totals(session).ham) == (0, 1)
        assert (token_counts(session, {"printer"})["printer"].spam, token_counts(session, {"printer"})["printer"].ham) == (0, 1)
    with database.write() as session:
        train_ticket(session, session.scalars(select(Ticket)).one(), SpamTraining.NONE)
    with database.read() as session:
        assert (totals(session).spam, totals(session).ham) == (0, 0)
        assert set(session.scalars(select(SpamToken.spam + SpamToken.ham))) == {0}


