"""Combines the evidence of a mail's most interesting words into one spam probability.

Each token's probability follows Robinson: the share of spam among the mails that carried it, pulled
towards 0.5 while it has been seen only a few times. The N tokens farthest from 0.5 are the
interesting words. Two ways to combine them were measured with bench/spam.py:
- `fisher` (Robinson-Fisher, chi-square; SpamBayes and bogofilter): scores spread over the whole range,
  few confident mistakes; the default;
- `graham` (naive Bayes product, "A Plan for Spam", as Cerb shows it): scores cling to 0 and 1, so a
  single threshold has no room between them.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

LOWEST = 0.0001
HIGHEST = 0.9999
NEUTRAL = 0.5
STRENGTH = 1.0  # Robinson's s: how many mails' worth of belief the neutral prior carries
MIN_DEVIATION = 0.1  # a token closer than this to 0.5 is no evidence at all


class Counts(NamedTuple):
    """How many trained spam and not-spam mails carried a token (or, for totals, were trained).

    A named tuple: hundreds are made for every mail scored, and a frozen dataclass costs more to build.
    """

    spam: int = 0
    ham: int = 0


class InterestingWord(NamedTuple):
    word: str
    probability: float


@dataclass(frozen=True)
class SpamScore:
    """A mail's spam probability in [0.0001, 0.9999], the words behind it, and whether the filter knew enough."""

    score: float
    words: tuple[InterestingWord, ...]
    trained: bool = True

    def words_json(self) -> list[dict[str, object]]:
        return [{"word": w.word, "probability": round(w.probability, 4)} for w in self.words]


UNTRAINED = SpamScore(NEUTRAL, (), trained=False)


def token_probability(counts: Counts, totals: Counts) -> float:
    """Robinson's f(w): the spam share of the token's mails, each class scaled by its size, shrunk to 0.5."""
    spam, ham = counts.spam, counts.ham
    spam_rate = spam / totals.spam if totals.spam else 0.0
    ham_rate = ham / totals.ham if totals.ham else 0.0
    if spam_rate + ham_rate <= 0:
        return NEUTRAL
    seen = spam + ham
    return (STRENGTH * NEUTRAL + seen * spam_rate / (spam_rate + ham_rate)) / (STRENGTH + seen)


def token_probabilities(counts: Mapping[str, Counts], totals: Counts) -> dict[str, float]:
    """Each counted token's probability."""
    return {token: token_probability(known, totals) for token, known in counts.items()}


def interesting_words(probabilities: Mapping[str, float], limit: int) -> tuple[InterestingWord, ...]:
    """The `limit` tokens farthest from neutral, strongest first (ties broken by the word, for stability).

    Plain tuples compared natively, and only the strongest `limit` kept in order (a long mail has
    thousands of tokens): this runs for every mail scored.
    """
    strong = [(-deviation, token, p) for token, p in probabilities.items()
              if (deviation := abs(p - NEUTRAL)) >= MIN_DEVIATION]
    return tuple(InterestingWord(token, p) for _, token, p in heapq.nsmallest(limit, strong))


def combine(words: tuple[InterestingWord, ...], method: str = "fisher") -> float:
    """One probability from the words' probabilities, clamped to [0.0001, 0.9999]; 0.5 without words."""
    if not words:
        return NEUTRAL
    probabilities = [min(max(w.probability, 1e-6), 1 - 1e-6) for w in words]
    value = _graham(probabilities) if method == "graham" else _fisher(probabilities)
    return min(max(value, LOWEST), HIGHEST)


def score_probabilities(probabilities: Mapping[str, float], limit: int, method: str = "fisher") -> SpamScore:
    """A mail's score from its known tokens' probabilities."""
    words = interesting_words(probabilities, limit)
    return SpamScore(combine(words, method), words)


def score_tokens(tokens: Iterable[str], counts: Mapping[str, Counts], totals: Counts, limit: int,
                 method: str = "fisher") -> SpamScore:
    """A mail's score from its tokens and the counts of those the filter has seen."""
    known = {token: counts[token] for token in tokens if token in counts}
    return score_probabilities(token_probabilities(known, totals), limit, method)


def _graham(probabilities: list[float]) -> float:
    """P = prod(p) / (prod(p) + prod(1-p)), in logarithms so that 15 tiny numbers do not underflow."""
    log_spam = sum(map(math.log, probabilities))
    log_ham = sum(math.log(1 - p) for p in probabilities)
    return 1 / (1 + math.exp(min(log_ham - log_spam, 700)))


def _fisher(probabilities: list[float]) -> float:
    """Robinson-Fisher (as SpamBayes): spamminess S and hamminess H from chi-square, (1 + S - H) / 2."""
    n = len(probabilities)
    spamminess = 1 - _chi2_survival(-2 * sum(math.log(1 - p) for p in probabilities), 2 * n)
    hamminess = 1 - _chi2_survival(-2 * sum(map(math.log, probabilities)), 2 * n)
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
