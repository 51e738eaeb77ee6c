"""Turns one mail into the set of tokens the filter counts: words, URL hosts and a few header clues.

The choice, measured with bench/spam.py on the SpamAssassin corpus (70/30 split, see its docstring):
- words are runs of letters (any script), digits and `$'-_` lower-cased, 3 to 24 characters long, so manufactured
  words (`vi4gra`, `s0ftware`) stay whole; pure numbers and stop words carry no weight and are dropped;
- subject words are counted apart (`subject:free`): the same word weighs differently there;
- every host named by a URL gives `url:host` and `url:` plus its registrable tail (`url:example.com`);
- a few telling header fields give prefixed tokens: the sender's domain, the mailer, the charset and
  the content type; other headers (Received, dates, ids) mostly describe the corpus, not the spam;
- HTML is reduced to text by a regular expression (fast; html2text was ~40x slower for the same
  result) and the names of a few spammy tags and attributes are kept (`html:font`, `html:img`).
A token counts once per mail however often it appears (Graham's and Cerb's rule).
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MIN_LENGTH = 3
MAX_LENGTH = 24
MAX_TOKEN = 80  # the width of spam_tokens.token
MAX_TEXT = 200_000  # characters of each body read: a huge mail's first pages say what it is
PAIRED_WORDS = 1000  # word pairs are drawn from this many first words (about 5,000 characters)

_WORD = re.compile(r"[^\W_$][\w$'\-]*[^\W_]|[$][\w$'\-]*[^\W_]")  # any script's letters and digits
_DIGITS = re.compile(r"[\d$%'_\-]+\Z")
_URL_HOST = re.compile(r"(?:https?|ftp)://(?:[^/\s@\"'<>]{0,64}@)?([a-z0-9.\-]+)")  # on lower-cased text
_WWW_HOST = re.compile(r"(?<![a-z0-9.\-])www\.([a-z0-9\-]+(?:\.[a-z0-9\-]+)+)")
_INVISIBLE = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<\s*/?\s*([a-z][a-z0-9]*)([^>]*)>", re.IGNORECASE)
_TELLING_TAGS = frozenset({"font", "img", "table", "center", "form", "input", "map", "area", "iframe", "blink"})
_TELLING_ATTRIBUTES = re.compile(r"\b(bgcolor|color|width|height|face|size)\s*=", re.IGNORECASE)
_ADDRESS_DOMAIN = re.compile(r"@([a-z0-9.\-]+)", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*\"?([a-z0-9_\-.:]+)", re.IGNORECASE)
_TELLING_HEADERS = {"from": "from", "reply-to": "reply", "x-mailer": "mailer", "user-agent": "mailer",
                    "content-type": "type"}

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being
below between both but by can cannot could did do does doing don't down during each few for from further
had has have having he her here hers herself him himself his how i if in into is isn't it it's its itself
let's me more most my myself no nor not of off on once only or other ought our ours ourselves out over
own same she should so some such than that that's the their theirs them themselves then there these they
this those through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves will just one get got
""".split())


class MailText(Protocol):
    """What the tokenizer reads: an InboundMessage or a stored core.models.Message both have it."""

    @property
    def subject(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def html(self) -> str: ...

    @property
    def headers(self) -> Sequence[Sequence[str]]: ...


@dataclass(frozen=True)
class TokenizerOptions:
    """The tokenizer's switches; the defaults are the measured best (bench/spam.py tries the others)."""

    subject_prefix: bool = True
    headers: bool = True
    all_headers: bool = True  # every field's words and hosts, tagged by the field (`rcvd:host`)
    url_hosts: bool = True
    html_tags: bool = True
    html_when_text: bool = False  # tokenize the HTML part as well when there is a text part
    html_tags_always: bool = True  # the HTML's tag tokens even when its text is not read
    attachments: bool = True  # each attachment's type and file name extension
    word_pairs: bool = True  # neighbouring words as one more token (`click here`), over the first PAIRED_WORDS


DEFAULT_OPTIONS = TokenizerOptions()


def tokenize(mail: MailText, options: TokenizerOptions = DEFAULT_OPTIONS) -> frozenset[str]:
    """The distinct tokens of one mail."""
    tokens: set[str] = set()
    subject = mail.subject.lower()
    tokens.update(f"subject:{w}" if options.subject_prefix else w for w in words(subject))
    body = mail.text[:MAX_TEXT].lower()
    markup = mail.html[:MAX_TEXT].lower()
    if markup and options.html_tags and (options.html_tags_always or options.html_when_text or not body.strip()):
        tokens.update(html_tokens(markup))
    if markup and (options.html_when_text or not body.strip()):
        body = f"{body}\n{html_to_text(markup)}"
    found = _WORD.findall(body)
    tokens.update(countable(found))
    if options.word_pairs:
        tokens.update(word_pairs(found[:PAIRED_WORDS]))
    if options.url_hosts:
        tokens.update(url_tokens(f"{body}\n{markup}" if markup else body))
    if options.all_headers:
        tokens.update(all_header_tokens(mail.headers))
    elif options.headers:
        tokens.update(header_tokens(mail.headers))
    if options.attachments:
        tokens.update(attachment_tokens(getattr(mail, "attachments", ())))
    return frozenset(tokens)  # every token is at most MAX_TOKEN long: words, pairs and tags by their make, the rest cut


def words(text: str) -> set[str]:
    """The countable words of lower-cased text: no stop words, no bare numbers, no very short or long runs."""
    return countable(_WORD.findall(text))


def countable(found: Sequence[str]) -> set[str]:
    """Of the word-like runs found, those that count as words.

    Only a run that starts with a digit or `$` can be a bare number: the pattern runs on those alone.
    """
    sized = {w for w in found if MIN_LENGTH <= len(w) <= MAX_LENGTH}
    return {w for w in sized - STOP_WORDS if w[0].isalpha() or not _DIGITS.match(w)}


def word_pairs(found: Sequence[str]) -> set[str]:
    """Each word and the next, stop words skipped (`limited offer`, `dear friend`): a phrase tells more than its words.

    Measured (bench/spam.py --alternatives): pairs take the online 1-AUC from 0.32% to 0.24%, for
    about three times the stored tokens; they are drawn from the first PAIRED_WORDS words only.
    """
    kept = [w for w in found if MIN_LENGTH <= len(w) <= MAX_LENGTH and w not in STOP_WORDS]
    return {f"{first} {second}" for first, second in zip(kept, kept[1:])}


def html_to_text(markup: str) -> str:
    """The visible text of HTML: scripts, styles and comments dropped, tags made spaces, entities decoded."""
    return html.unescape(_TAG.sub(" ", _INVISIBLE.sub(" ", markup)))


def html_tokens(markup: str) -> set[str]:
    """A few tags and attributes spam leans on (`html:font`, `html:bgcolor`)."""
    found = {f"html:{name.lower()}" for name, _ in _TAG.findall(markup) if name.lower() in _TELLING_TAGS}
    found.update(f"html:{a.lower()}" for a in _TELLING_ATTRIBUTES.findall(markup))
    return found


def url_tokens(text: str) -> set[str]:
    """`url:` plus each host a URL names, and plus its last two labels (the registrable tail, roughly).

    The text is lower-cased already: a case-blind pattern is several times slower.
    """
    found: set[str] = set()
    hosts = _URL_HOST.findall(text) if "://" in text else []
    for host in hosts + (_WWW_HOST.findall(text) if "www." in text else []):
        host = host.lower().strip(".-")
        if not host:
            continue
        found.add(f"url:{host}"[:MAX_TOKEN])
        labels = host.split(".")
        if len(labels) > 2:
            found.add(f"url:{'.'.join(labels[-2:])}"[:MAX_TOKEN])
    return found


_HOST = re.compile(r"[a-z0-9][a-z0-9\-]*(?:\.[a-z0-9\-]+)+")  # hosts and IPv4 addresses, on lower-cased text
_HAS_DIGIT = re.compile(r"\d")
_ADDRESS = r"([a-z0-9.!#$%&'*+/=?^_`{|}~\-]{1,64}@([a-z0-9\-]+(?:\.[a-z0-9\-]+)+))"
_CLUE = re.compile(f"{_ADDRESS}|({_HOST.pattern})")  # an address, else a host: one pass finds both
_FIELD_TAGS = {"from": "from", "sender": "from", "reply-to": "reply", "to": "to", "cc": "to",
               "return-path": "rtrn", "received": "rcvd", "message-id": "mid", "x-mailer": "mailer",
               "user-agent": "mailer", "content-type": "type"}
_SKIPPED_FIELDS = frozenset({"subject"})  # counted apart, as `subject:` words
MAX_FIELD = 1000  # characters of each field read
FIELD_CACHE = 16_384  # fields whose tokens are remembered (a few MB)


def all_header_tokens(headers: Sequence[Sequence[str]]) -> set[str]:
    """Every field's words and hosts, tagged by the field: relays, recipients, ids' domains and mailers tell.

    A few fields share a tag (To and Cc are `to:`); the rest are tagged by their own name.
    """
    found: set[str] = set()
    for name, value in headers:
        field = name.lower()
        if field not in _SKIPPED_FIELDS:
            found.update(_field_tokens(_FIELD_TAGS.get(field, field[:24]), value[:MAX_FIELD]))
    return found


@lru_cache(maxsize=FIELD_CACHE)
def _field_tokens(tag: str, value: str) -> frozenset[str]:
    """One field's tokens. Remembered: most fields (lists' List-*, MIME-Version, a mailer) recur mail after mail.

    An address or a host is one clue, one token: its labels are not words of their own. A Message-ID
    gives its domain only, and a Received field no words with digits (queue ids, times): each mail has
    its own, and every one would be a row in spam_tokens that never scores again.
    """
    value = value.lower()
    if tag == "mid":
        value = value.rpartition("@")[2]
    found: set[str] = set()
    if "." in value and (clues := _CLUE.findall(value)):
        for address, domain, host in clues:
            if address:
                found.update((f"{tag}:{address}", f"{tag}:{domain.strip('.-')}"))
            else:
                found.add(f"{tag}:{host.strip('.-')}")
        value = _CLUE.sub(" ", value)
    found.update(f"{tag}:{w}" for w in words(value) if tag != "rcvd" or not _HAS_DIGIT.search(w))
    if tag == "type":
        found.add(f"type:{value.split(';', 1)[0].strip()}")
        found.update(f"charset:{c}" for c in _CHARSET.findall(value))
    return frozenset(t[:MAX_TOKEN] for t in found)


def attachment_tokens(attachments: Sequence[object]) -> set[str]:
    """Each attachment's content type and file name extension: `attach:application/zip`, `attach:.exe`."""
    found: set[str] = set()
    for attachment in attachments:
        found.add(f"attach:{str(getattr(attachment, 'content_type', '')).lower()[:60]}")
        name = str(getattr(attachment, "filename", "")).lower()
        if "." in name:
            found.add(f"attach:.{name.rsplit('.', 1)[1][:10]}")
    return found


def header_tokens(headers: Sequence[Sequence[str]]) -> set[str]:
    """Prefixed tokens from the sender's domain, the mailer, the charset and the content type."""
    found: set[str] = set()
    for name, value in headers:
        prefix = _TELLING_HEADERS.get(name.lower())
        if prefix is None:
            continue
        value = value.lower()[:1000]
        if prefix in ("from", "reply"):
            found.update(f"{prefix}:{domain.strip('.')}" for domain in _ADDRESS_DOMAIN.findall(value))
        elif prefix == "type":
            found.add(f"type:{value.split(';', 1)[0].strip()}")
            found.update(f"charset:{c}" for c in _CHARSET.findall(value))
        else:
            found.update(f"{prefix}:{w}" for w in words(value))
    return found
