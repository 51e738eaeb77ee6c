"""Combines the evidence of a mail's most interesting words into one spam probability.

Each token's probability follows Robinson: the share of spam among the mails that carried it, pulled
towards x (0.52) while it has been seen only a few times, with bogofilter's weights (s = 0.0178: one
sighting already says much, so a new campaign counts at once). Tokens nearer 0.5 than the minimum
deviation (0.375) are no evidence; the rest, up to N, are the interesting words. Three ways to
combine them, measured with bench/spam.py on mail the filter had not seen (online and by date):
- `robinson` (geometric means, Robinson's original): ranks mixed mail by which side is stronger;
  the best ranking measured (online 1-AUC 0.24% against fisher's 0.32%), the default;
- `fisher` (Robinson-Fisher, chi-square; SpamBayes and bogofilter): saturates, so every mail with
  strong words on both sides lands on 0.5;
- `graham` (naive Bayes product, "A Plan for Spam", as Cerb shows it): scores cling to 0 and 1, so a
  single threshold has no room between them.
The combined value ranks mails and meets the threshold unclamped; only what is shown is clamped.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

LOWEST = 0.0001
HIGHEST = 0.9999
NEUTRAL = 0.5


@dataclass(frozen=True)
class Scoring:
    """The arithmetic's knobs (from `[spam]` in the settings; bench/spam.py tries others).

    strength: Robinson's s, how many mails' worth of belief the prior `unknown` carries for a token;
    min_deviation: a token closer than this to 0.5 is no evidence at all; limit: at most this many
    interesting words combined; method: "robinson", "fisher" or "graham"; well_seen: trained mails a spammy word
    must have been seen in to count as evidence for the hold guard (spam.filter.is_spam).
    """

    strength: float = 1.0
    unknown: float = NEUTRAL
    min_deviation: float = 0.1
    limit: int = 150
    method: str = "robinson"
    well_seen: int = 3


DEFAULT_SCORING = Scoring()


class Counts(NamedTuple):
    """How many trained spam and not-spam mails carried a token (or, for totals, were trained).

    A named tuple: hundreds are made for every mail scored, and a frozen dataclass costs more to build.
    """

    spam: int = 0
    ham: int = 0


class Evidence(NamedTuple):
    """What one token says: its spam probability, and in how many trained mails it was seen."""

    probability: float
    seen: int


class InterestingWord(NamedTuple):
    word: str
    probability: float
    seen: int = 0


SHOWN_WORDS = 15  # the strongest words stored with a ticket and shown (Cerb shows 15); scoring uses all


@dataclass(frozen=True)
class SpamScore:
    """A mail's spam probability, the words behind it, and whether the filter knew enough.

    `value` is the combined probability as computed (it ranks mails and meets the threshold: clamping
    would tie thousands of mails at the floor); `score` is the same clamped to [0.0001, 0.9999], the
    0.01%-99.99% that is shown and stored.
    """

    score: float
    words: tuple[InterestingWord, ...]
    trained: bool = True
    value: float = NEUTRAL
    spam_evidence: int = 0  # spammy words combined that were seen in at least Scoring.well_seen trained mails
    word_count: int = 0  # interesting words combined; `words` holds the SHOWN_WORDS strongest of them
    least_trained: int = 0  # mails trained in the smaller class when it was scored (spam.filter.is_spam)

    def words_json(self) -> list[dict[str, object]]:
        """The strongest words, as stored with the ticket and shown."""
        return [{"word": w.word, "probability": round(w.probability, 4)} for w in self.words]


UNTRAINED = SpamScore(NEUTRAL, (), trained=False, value=NEUTRAL)


def token_probability(counts: Counts, totals: Counts, scoring: Scoring = DEFAULT_SCORING) -> float:
    """Robinson's f(w): the spam share of the token's mails, each class scaled by its size, shrunk to `unknown`."""
    spam, ham = counts.spam, counts.ham
    spam_rate = spam / totals.spam if totals.spam else 0.0
    ham_rate = ham / totals.ham if totals.ham else 0.0
    if spam_rate + ham_rate <= 0:
        return scoring.unknown
    seen = spam + ham
    return ((scoring.strength * scoring.unknown + seen * spam_rate / (spam_rate + ham_rate))
            / (scoring.strength + seen))


def token_evidence(counts: Mapping[str, Counts], totals: Counts,
                   scoring: Scoring = DEFAULT_SCORING) -> dict[str, Evidence]:
    """Each counted token's probability, and how often it was seen."""
    return {token: Evidence(token_probability(known, totals, scoring), known.spam + known.ham)
            for token, known in counts.items()}


def combine(probabilities: Sequence[float], method: str = "robinson") -> float:
    """One probability from the words' probabilities, unclamped; 0.5 without words.

    Sums are exact (math.fsum), so the same words give the same value in any order: a process that
    remembers some words and reads others sees them in another order than one that reads them all.
    """
    if not probabilities:
        return NEUTRAL
    kept = [min(max(p, 1e-6), 1 - 1e-6) for p in probabilities]
    if method == "graham":
        return _graham(kept)
    return _fisher(kept) if method == "fisher" else _robinson(kept)


def shown(value: float) -> float:
    """The probability as stored and shown: 0.01%-99.99%, never a certainty."""
    return min(max(value, LOWEST), HIGHEST)


def score_evidence(evidence: Mapping[str, Evidence], scoring: Scoring = DEFAULT_SCORING) -> SpamScore:
    """A mail's score from its known tokens' evidence: the interesting words, at most `limit`, combined.

    Plain tuples, compared natively, and named words made only for the SHOWN_WORDS strongest (ties
    broken by the word, for stability): a mail has a hundred interesting words or more, and this
    runs for every mail scored.
    """
    least = scoring.min_deviation
    strong = [(-deviation, token, p, seen) for token, (p, seen) in evidence.items()
              if (deviation := abs(p - NEUTRAL)) >= least]
    if len(strong) > scoring.limit:
        strong = heapq.nsmallest(scoring.limit, strong)
    value = combine([p for _, _, p, _ in strong], scoring.method)
    well_seen = sum(1 for _, _, p, seen in strong if p > NEUTRAL and seen >= scoring.well_seen)
    words = tuple(InterestingWord(token, p, seen) for _, token, p, seen in heapq.nsmallest(SHOWN_WORDS, strong))
    return SpamScore(shown(value), words, value=value, spam_evidence=well_seen, word_count=len(strong))


def score_tokens(tokens: Iterable[str], counts: Mapping[str, Counts], totals: Counts,
                 scoring: Scoring = DEFAULT_SCORING) -> SpamScore:
    """A mail's score from its tokens and the counts of those the filter has seen (in memory: benches, tests)."""
    known = {token: counts[token] for token in tokens if token in counts}
    return score_evidence(token_evidence(known, totals, scoring), scoring)


def _graham(probabilities: list[float]) -> float:
    """P = prod(p) / (prod(p) + prod(1-p)), in logarithms so that 15 tiny numbers do not underflow."""
    log_spam = math.fsum(map(math.log, probabilities))
    log_ham = math.fsum(math.log(1 - p) for p in probabilities)
    return 1 / (1 + math.exp(min(log_ham - log_spam, 700)))


def _robinson(probabilities: list[float]) -> float:
    """Robinson's geometric means: P = 1 - (prod(1-p))^(1/n), Q = 1 - (prod p)^(1/n), (1 + (P-Q)/(P+Q)) / 2.

    Unlike chi-square it does not saturate: a mail with strong words both ways still ranks by which
    side is stronger, instead of landing on 0.5 with every other mixed mail.
    """
    n = len(probabilities)
    spam = 1 - math.exp(math.fsum(math.log(1 - p) for p in probabilities) / n)
    ham = 1 - math.exp(math.fsum(map(math.log, probabilities)) / n)
    return (1 + (spam - ham) / (spam + ham)) / 2 if spam + ham > 0 else NEUTRAL


def _fisher(probabilities: list[float]) -> float:
    """Robinson-Fisher (as SpamBayes): spamminess S and hamminess H from chi-square, (1 + S - H) / 2."""
    n = len(probabilities)
    spamminess = 1 - _chi2_survival(-2 * math.fsum(math.log(1 - p) for p in probabilities), 2 * n)
    hamminess = 1 - _chi2_survival(-2 * math.fsum(map(math.log, probabilities)), 2 * n)
    return (1 + spamminess - hamminess) / 2


def _chi2_survival(chi2: float, freedom: int) -> float:
    """P(X >= chi2) for chi-square with an even number of degrees of freedom (closed form).

    Past i > m the terms only shrink; once one is below the total's last bit, none changes it any more.
    """
    m = chi2 / 2
    term = total = math.exp(-m)
    for i in range(1, freedom // 2):
        term *= m / i
        total += term
        if i > m and term < total * 1e-17:
            break
    return min(total, 1.0)
