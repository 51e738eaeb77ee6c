"""What the tokenizer takes from a mail and how the arithmetic weighs it, without a database."""

from __future__ import annotations

import random
from dataclasses import replace
from email.message import EmailMessage

import pytest

from core.inbound import Envelope, InboundMessage
from core.settings import SpamSettings
from mailgate.parse import parse_message
from spam.scoring import SHOWN_WORDS, Counts, Scoring, combine, score_tokens
from spam.tokens import MAX_TOKEN, tokenize
from testkit import make_mail

RELAYED = (b"Received: from mx.pills.example.biz (mx.pills.example.biz [203.0.113.9])\r\n"
           b"\tby mail.customer.test (Postfix) with ESMTP id 4F2A17C3B1\r\n"
           b"\tfor <support@example.com>; Fri, 20 Nov 2026 09:30:00 +0000\r\n")


def parsed(mail: EmailMessage, prefix: bytes = b"") -> InboundMessage:
    return parse_message(prefix + mail.as_bytes(), Envelope("test"))


def test_every_header_field_gives_tagged_tokens_without_per_mail_noise() -> None:
    mail = make_mail(subject="Invoice", body="Please see attached.", sender="Bob <bob@mail.customer.test>",
                     cc="carol@customer.test", message_id="<a1b2c3d4e5@mailer.customer.test>")
    mail["X-Mailer"] = "Microsoft Outlook Express 6.00.2800.1106"
    tokens = tokenize(parsed(mail, RELAYED))
    assert {"rcvd:mx.pills.example.biz", "rcvd:203.0.113.9", "rcvd:postfix", "rcvd:esmtp"} <= tokens
    assert {"from:bob@mail.customer.test", "from:mail.customer.test", "to:carol@customer.test",
            "to:support@example.com", "mid:mailer.customer.test", "mailer:microsoft", "mailer:outlook"} <= tokens
    assert "rcvd:4f2a17c3b1" not in tokens  # a queue id is every mail's own: it would only fill the table
    assert not any(t.startswith("mid:a1b2") for t in tokens)  # nor an id's local part
    assert not any(t.startswith("subject:") and t.count(":") > 1 for t in tokens)
    assert "from:mail" not in tokens and "from:customer" not in tokens  # a host is one clue, not three


def test_attachments_and_html_markup_are_evidence_even_beside_a_text_part() -> None:
    mail = make_mail(subject="Your order", body="See the picture.")
    mail.add_alternative("<html><body><font color=red><img src='http://x.example/a.gif'>See</font></body></html>",
                         subtype="html")
    mail.add_attachment(b"MZ\x90\x00", maintype="application", subtype="x-msdownload", filename="ORDER.PDF.exe")
    tokens = tokenize(parsed(mail))
    assert {"attach:application/x-msdownload", "attach:.exe"} <= tokens
    assert {"html:font", "html:img", "html:color"} <= tokens


COUNTS = {f"spam{n}": Counts(50, 0) for n in range(40)} | {f"ham{n}": Counts(0, 50) for n in range(40)}
SPAMMY = [f"spam{n}" for n in range(40)]


def test_ranking_uses_the_unclamped_probability_and_shows_the_clamped_one() -> None:
    fisher = replace(SpamSettings().scoring(), method="fisher")  # chi-square saturates: the clamp ties many
    surer = score_tokens(SPAMMY, COUNTS, Counts(50, 50), fisher)
    less = score_tokens(SPAMMY[:30] + ["ham0"], COUNTS, Counts(50, 50), fisher)
    assert surer.score == less.score == 0.9999  # both shown as 99.99%
    assert surer.value > less.value  # but the surer one ranks above
    hammy = score_tokens([f"ham{n}" for n in range(40)], COUNTS, Counts(50, 50), fisher)
    assert hammy.score == 0.0001 and hammy.value < 0.0001
    assert surer.word_count == 40 and len(surer.words) == len(surer.words_json()) == SHOWN_WORDS  # 15 kept


def test_mixed_evidence_still_ranks_by_the_stronger_side() -> None:
    """Chi-square puts every mail with strong words both ways on 0.5; Robinson's means (the default) do not."""
    shipped, fisher = SpamSettings().scoring(), replace(SpamSettings().scoring(), method="fisher")
    more_spam = SPAMMY[:30] + [f"ham{n}" for n in range(10)]
    more_ham = SPAMMY[:10] + [f"ham{n}" for n in range(30)]
    assert score_tokens(more_spam, COUNTS, Counts(50, 50), fisher).value == pytest.approx(0.5)
    assert score_tokens(more_ham, COUNTS, Counts(50, 50), fisher).value == pytest.approx(0.5)
    ranked = [score_tokens(m, COUNTS, Counts(50, 50), shipped).value for m in (more_ham, more_spam)]
    assert ranked[0] < 0.5 < ranked[1]


def test_a_word_seen_once_counts_but_is_no_evidence_for_holding() -> None:
    """bogofilter's s = 0.0178: one sighting is a strong word, but the hold guard wants words seen in 3 mails."""
    scoring = Scoring(strength=0.0178, unknown=0.52, min_deviation=0.375, limit=1000, well_seen=3)
    once = score_tokens(["fresh"], {"fresh": Counts(1, 0)}, Counts(10, 10), scoring)
    assert once.words[0].probability > 0.99 and once.spam_evidence == 0
    known = score_tokens(["old"], {"old": Counts(3, 0)}, Counts(10, 10), scoring)
    assert known.spam_evidence == 1
    weak = score_tokens(["meh"], {"meh": Counts(6, 4)}, Counts(10, 10), scoring)
    assert weak.words == () and weak.value == 0.5  # nearer 0.5 than the minimum deviation: no evidence


def test_no_token_is_longer_than_the_table_holds() -> None:
    label = "x" * 63
    mail = make_mail(subject="Long", body=f"See http://{label}.{label}.example/ and www.{label}.{label}.test now",
                     sender=f"bob@{label}.{label}.example")
    mail["X-Long"] = f"{label}.{label}.{label}.example " + "y" * 500
    tokens = tokenize(parsed(mail))
    assert max(map(len, tokens)) <= MAX_TOKEN and f"url:{label}.{label}.example"[:MAX_TOKEN] in tokens


def test_the_same_words_give_the_same_value_in_any_order() -> None:
    """A process remembers some words and reads others: it meets them in another order than a fresh one."""
    rng = random.Random(5)
    probabilities = [rng.uniform(0.001, 0.999) for _ in range(400)]
    for method in ("robinson", "fisher", "graham"):
        values = {combine(rng.sample(probabilities, len(probabilities)), method) for _ in range(20)}
        assert len(values) == 1, method
