"""The spam bench's machinery: the corpus in arrival order, both filters fed from it, and the figures they earn.

bench/spam.py runs the protocols and prints; this module knows how to order the mails, how to replay
postdesk's arithmetic in memory (spam.tokens and spam.scoring, with spam.filter's warm-up and verdict,
so the bench measures whatever those become), how to drive bogofilter through its command line, and
how to read a ranking: 1-AUC, and the best recall a false-positive budget allows.
"""

from __future__ import annotations

import email.utils
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import UnparseableMessage
from core.inbound import Envelope, InboundMessage
from core.settings import SpamSettings
from mailgate.mail_sources import read_messages
from mailgate.parse import parse_message
from spam.filter import is_spam, scored
from spam.scoring import Counts, Evidence, Scoring, SpamScore, token_evidence
from spam.tokens import TokenizerOptions, tokenize

EARLIEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=timezone.utc)  # older Date headers are forged or broken clocks
BOGOFILTER_CHUNK = 400  # files per bogofilter command line
BOGOFILTER_VERDICTS = {0: "S", 1: "H", 2: "U"}  # its exit status; 3 is an error


@dataclass(frozen=True)
class Sample:
    """One labelled mail, parsed once; `sent` is its Date header when that is usable (see `sent_date`)."""

    path: Path
    relative: str
    spam: bool
    mail: InboundMessage
    sent: datetime | None


@dataclass(frozen=True)
class Corpus:
    """The labelled mails that parse, in the label file's order, and what was left out or doubted."""

    samples: list[Sample]
    unparseable: int
    undated: int  # no Date header, or one that does not parse or lies outside 1990..now
    old_years: int  # Date headers with a three-digit year, read as 1900 + it


def load_corpus(corpus: Path, labels: Path, now: datetime) -> Corpus:
    """Every labelled message that parses (the unparseable are counted and left out of both filters)."""
    samples, unparseable, old_years = [], 0, 0
    for line in labels.read_text().splitlines()[1:]:
        relative, label = line.split("\t")
        path = corpus / relative
        try:
            mail = parse_message(next(read_messages(path)).raw, Envelope("bench"))
        except UnparseableMessage:
            unparseable += 1
            continue
        header = next((value for name, value in mail.headers if name.lower() == "date"), None)
        sent, old_year = sent_date(header, now)
        old_years += old_year
        samples.append(Sample(path, relative, label == "spam", mail, sent))
    return Corpus(samples, unparseable, sum(s.sent is None for s in samples), old_years)


def sent_date(header: str | None, now: datetime) -> tuple[datetime | None, bool]:
    """The Date header as an aware datetime (None when unusable), and whether its year had three digits.

    RFC 5322 4.3 reads a three-digit year as 1900 + it (a 2002 spammer's software wrote "102"); a date
    without a zone is taken as UTC; one before 1990 or after `now` is forged, as good as none.
    """
    if header is None:
        return None, False
    try:
        sent = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None, False
    old_year = 100 <= sent.year < 1000
    try:
        sent = sent.replace(year=sent.year + 1900) if old_year else sent
    except ValueError:  # 29 February of a year that is no leap year any more
        return None, old_year
    sent = sent if sent.tzinfo else sent.replace(tzinfo=timezone.utc)
    return (sent if EARLIEST_PLAUSIBLE <= sent <= now else None), old_year


def arrival_order(samples: Sequence[Sample]) -> list[Sample]:
    """The mails as a helpdesk would have met them: by Date, ties broken by path.

    A mail without a usable Date takes the date of the mail before it in the label file (the corpus's
    own numbering, roughly its order of collection), so it lands beside its neighbour; the first ones,
    with no neighbour before them, take the first usable date after them.
    """
    first = next((s.sent for s in samples if s.sent is not None), datetime.min.replace(tzinfo=timezone.utc))
    keyed, previous = [], first
    for sample in samples:
        previous = sample.sent or previous
        keyed.append(((previous, sample.relative), sample))
    return [sample for _, sample in sorted(keyed, key=lambda pair: pair[0])]


class TokenCache:
    """Each mail tokenized once per TokenizerOptions: the scoring variants all reuse the same tokens."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self._samples = samples
        self._index = {id(sample): i for i, sample in enumerate(samples)}
        self._tokens: dict[TokenizerOptions, list[frozenset[str]]] = {}

    def of(self, samples: Iterable[Sample], options: TokenizerOptions = TokenizerOptions()) -> list[frozenset[str]]:
        if options not in self._tokens:
            self._tokens[options] = [tokenize(s.mail, options) for s in self._samples]
        every = self._tokens[options]
        return [every[self._index[id(sample)]] for sample in samples]


class Memory:
    """Postdesk's counts held in memory: what spam.statistics stores, without the database."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {}  # token -> [spam, ham]
        self.totals = Counts()
        self._remembered: dict[str, Evidence | None] = {}  # as spam.statistics.Learnt: until the next learn
        self._remembered_for: Scoring | None = None

    def learn(self, tokens: Iterable[str], spam: bool) -> None:
        column = 0 if spam else 1
        for token in tokens:
            self.counts.setdefault(token, [0, 0])[column] += 1
        self.totals = Counts(self.totals.spam + spam, self.totals.ham + (not spam))
        self._remembered.clear()

    def score(self, tokens: frozenset[str], settings: SpamSettings, scoring: Scoring) -> SpamScore:
        """As spam.filter.score_mail: the same rules (spam.filter.scored) on counts held in memory."""
        known = {t: Counts(*c) for t in tokens if (c := self.counts.get(t)) is not None}
        return scored(token_evidence(known, self.totals, scoring), self.totals, settings, scoring)

    def score_remembering(self, tokens: frozenset[str], settings: SpamSettings, scoring: Scoring) -> SpamScore:
        """`score` as a daemon scores between two trainings: what each token says is remembered
        (spam.statistics.Learnt, per training generation), weak and unseen tokens as no evidence."""
        if self._remembered_for != scoring:
            self._remembered.clear()
            self._remembered_for = scoring
        remembered = self._remembered
        missing = [t for t in tokens if t not in remembered]
        known = {t: Counts(*c) for t in missing if (c := self.counts.get(t)) is not None}
        remembered.update(dict.fromkeys(missing))
        remembered.update({t: e for t, e in token_evidence(known, self.totals, scoring).items()
                           if abs(e.probability - 0.5) >= scoring.min_deviation})
        evidence = {t: e for t in tokens if (e := remembered[t]) is not None}
        return scored(evidence, self.totals, settings, scoring)


def replay_online(tokens: Sequence[frozenset[str]], labels: Sequence[bool], settings: SpamSettings,
                  scoring: Scoring) -> list[SpamScore]:
    """Each mail scored with what was learnt before it, then learnt with its true label (a worker's verdict)."""
    memory, results = Memory(), []
    for mail_tokens, spam in zip(tokens, labels):
        results.append(memory.score(mail_tokens, settings, scoring))
        memory.learn(mail_tokens, spam)
    return results


def trained_memory(tokens: Sequence[frozenset[str]], labels: Sequence[bool]) -> Memory:
    memory = Memory()
    for mail_tokens, spam in zip(tokens, labels):
        memory.learn(mail_tokens, spam)
    return memory


@dataclass(frozen=True)
class OperatingPoint:
    """The best a score cutoff does within a false-positive budget: spam when score >= cutoff."""

    recall: float
    false_positives: int
    cutoff: float  # inf: no cutoff fits the budget, nothing is called spam


@dataclass(frozen=True)
class Accuracy:
    """One filter's figures on one protocol: its ranking, and its own verdicts."""

    hams: int
    spams: int
    one_minus_auc: float
    false_positives: int  # ham the filter's verdict calls spam: a customer's mail hidden
    caught: int  # spam the verdict calls spam
    budgets: tuple[tuple[float, OperatingPoint], ...]  # (largest share of ham called spam, best cutoff)


def measure(labels: Sequence[bool], scores: Sequence[float], verdicts: Sequence[bool],
            fp_budgets: Sequence[float]) -> Accuracy:
    hams, spams = labels.count(False), labels.count(True)
    false_positives = sum(1 for spam, said in zip(labels, verdicts) if said and not spam)
    caught = sum(1 for spam, said in zip(labels, verdicts) if said and spam)
    budgets = tuple((budget, best_recall(labels, scores, budget)) for budget in fp_budgets)
    return Accuracy(hams, spams, one_minus_auc(labels, scores), false_positives, caught, budgets)


def one_minus_auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Mann-Whitney: the share of (spam, ham) pairs ranked the wrong way round, a tie counting half."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    spam_rank_sum, start = 0.0, 0
    while start < len(order):  # tied scores share their mean rank (1-based)
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        spam_rank_sum += (start + end + 2) / 2 * sum(labels[i] for i in order[start:end + 1])
        start = end + 1
    spams = sum(labels)
    hams = len(labels) - spams
    auc = (spam_rank_sum - spams * (spams + 1) / 2) / (spams * hams)
    return 1 - auc


def best_recall(labels: Sequence[bool], scores: Sequence[float], budget: float) -> OperatingPoint:
    """The highest recall of a cutoff whose false positives stay within `budget` of the ham.

    Cutoffs are tried at each distinct score, highest first: mails with the same score fall on the same
    side of any cutoff, so a tie of a ham and a spam is taken (or left) whole.
    """
    allowed = int(budget * labels.count(False) + 1e-9)
    spams = labels.count(True)
    ranked = sorted(zip(scores, labels), key=lambda pair: -pair[0])
    best, caught, false_positives, i = OperatingPoint(0.0, 0, float("inf")), 0, 0, 0
    while i < len(ranked):
        cutoff = ranked[i][0]
        while i < len(ranked) and ranked[i][0] == cutoff:
            caught += ranked[i][1]
            false_positives += not ranked[i][1]
            i += 1
        if false_positives > allowed:
            break
        best = OperatingPoint(caught / spams, false_positives, cutoff)
    return best


def postdesk_verdicts(results: Sequence[SpamScore], settings: SpamSettings) -> list[bool]:
    """spam.filter.is_spam on each: the threshold, the warm-up and whatever guard the product applies."""
    return [is_spam(result, settings) for result in results]


@dataclass(frozen=True)
class Bogofilter:
    """One bogofilter wordlist directory, driven through its command line as a user's scripts drive it."""

    home: Path

    def create(self) -> Bogofilter:
        """An empty wordlist, so that bogofilter scores from the first mail on (it refuses without one)."""
        self.home.mkdir(parents=True)
        subprocess.run(["bogoutil", "-l", str(self.home / "wordlist.db")], input=b"", check=True)
        return self

    def register(self, paths: Sequence[Path], spam: bool) -> None:
        """-s (spam) or -n (ham) on each file: its true label, never bogofilter's own verdict (-u)."""
        names = [str(p) for p in paths]
        for start in range(0, len(names), BOGOFILTER_CHUNK):
            subprocess.run(["bogofilter", "-d", str(self.home), "-s" if spam else "-n",
                            "-B", *names[start:start + BOGOFILTER_CHUNK]], check=True)

    def classify(self, path: Path) -> tuple[str, float]:
        """Verdict (S, H or U: its exit status) and score (-TT: 16 digits; -T rounds to 6) of one file."""
        done = subprocess.run(["bogofilter", "-d", str(self.home), "-TT", "-I", str(path)],
                              capture_output=True, text=True)
        if done.returncode not in BOGOFILTER_VERDICTS:
            raise RuntimeError(f"bogofilter failed on {path}: {done.stderr.strip()}")
        return BOGOFILTER_VERDICTS[done.returncode], float(done.stdout)

    def classify_bulk(self, paths: Sequence[Path]) -> list[tuple[str, float]]:
        """Each file's verdict (-T -B) and its score to 16 digits (-TT -B), in the order given."""
        letters = self._bulk(paths, "-T")
        scores = self._bulk(paths, "-TT")
        return [(letters[str(p)].split()[0], float(scores[str(p)])) for p in paths]

    def _bulk(self, paths: Sequence[Path], terse: str) -> dict[str, str]:
        """What one -B run per chunk printed after each path (the verdict and score): the first line per path."""
        names, found = [str(p) for p in paths], {}
        fields = 2 if terse == "-T" else 1  # -T: `path S 0.99`; -TT: `path 0.9912345678901234`
        for start in range(0, len(names), BOGOFILTER_CHUNK):
            done = subprocess.run(["bogofilter", "-d", str(self.home), terse, "-B",
                                   *names[start:start + BOGOFILTER_CHUNK]], capture_output=True, text=True)
            if done.returncode not in BOGOFILTER_VERDICTS:  # the status of the last file, or 3: an error
                raise RuntimeError(f"bogofilter {terse} -B failed: {done.stderr.strip()}")
            for line in done.stdout.splitlines():
                name, *rest = line.rsplit(" ", fields)
                found.setdefault(name, " ".join(rest))
        return found

    def messages(self) -> Counts:
        """How many messages its wordlist counts as spam and as ham (`.MSG_COUNT`)."""
        out = subprocess.run(["bogoutil", "-w", str(self.home / "wordlist.db"), ".MSG_COUNT"],
                             capture_output=True, text=True, check=True).stdout
        spam, ham = out.splitlines()[-1].split()[1:3]
        return Counts(int(spam), int(ham))


def bogofilter_cutoffs() -> tuple[float, float]:
    """spam_cutoff and ham_cutoff as this install sets them (`bogofilter -Q`)."""
    values = {}
    for line in subprocess.run(["bogofilter", "-Q"], capture_output=True, text=True, check=True).stdout.splitlines():
        name, _, rest = line.partition("=")
        if rest:
            values[name.strip()] = rest.split("#")[0].strip()
    return float(values["spam_cutoff"]), float(values["ham_cutoff"])
