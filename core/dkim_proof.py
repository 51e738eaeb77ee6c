"""Decides whether a DKIM signature proves that a mail comes from a given address.

Anyone can write any From header; only a DKIM signature that verifies against a key published in
the signing domain's DNS shows that that domain's mail server vouched for the mail, and since the
signature must cover the From header, that the From header is the one it vouched for. The proof
is only worth something for the From address when the signing domain (d=) is *aligned* with the
address's domain: equal to it, or a parent of it (relaxed alignment as in DMARC, without the public
suffix list: d=corp.test proves jane@mail.corp.test, never the reverse, and a one-label d= never
aligns). DKIM proves the domain, not the mailbox: it trusts the domain not to let its users send
as each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import dkim

from core.addresses import normalize_domain
from core.errors import UsageError

# dkimpy calls dnsfunc(name, timeout=seconds) with name = b"<selector>._domainkey.<d>." (trailing
# dot, case as signed) and reads a TXT record: bytes, str, or None for "no such record". A
# DnsLookup takes only the name: _for_dkimpy absorbs the timeout, a lookup bounds its own time.
DnsLookup = Callable[[bytes], bytes | str | None]

MAX_VERIFIED = 5  # aligned signatures verified at most: each costs a DNS lookup and an RSA check
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # well above [smtp] max_message_size; stops pathological input
DNS_TIMEOUT = 5  # seconds, for dkimpy's own resolver when no lookup is passed in
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def dkim_proves(raw: bytes, email: str, dns: DnsLookup | None = None) -> bool:
    """True when a DKIM signature aligned with the domain of `email` and covering From verifies."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return False
    try:
        domain = normalize_domain(email.rpartition("@")[2])
        candidates = _aligned_signatures(raw, domain)[:MAX_VERIFIED]
        if not candidates:
            return False  # nothing worth a DNS lookup
        verifier = dkim.DKIM(raw, minkey=1024, timeout=DNS_TIMEOUT)
        dnsfunc = dkim.get_txt if dns is None else _for_dkimpy(dns)
        return any(verifier.verify(idx=i, dnsfunc=dnsfunc) is True for i in candidates)
    except Exception:  # a malformed mail, signature or key, or a DNS failure: not proven
        return False


def _aligned_signatures(raw: bytes, domain: str) -> list[int]:
    """Indexes, among the DKIM-Signature headers, of those worth verifying for `domain`; no DNS."""
    end = _HEADER_END.search(raw)
    headers, _ = dkim.rfc822_parse(raw[:end.start()] if end else raw)
    signatures = [value for name, value in headers if name.lower() == b"dkim-signature"]
    return [i for i, value in enumerate(signatures) if _worth_verifying(value, domain)]


def _worth_verifying(value: bytes, domain: str) -> bool:
    """A signature whose d= aligns with `domain`, that signs From and that cannot be extended."""
    try:
        tags = dkim.util.parse_tag_value(value)
        signer = normalize_domain(tags[b"d"].decode("utf-8"))
    except (dkim.util.InvalidTagValueList, KeyError, UnicodeError, ValueError):
        return False
    signed = {h.lower() for h in re.split(rb"\s*:\s*", tags.get(b"h", b"").strip())}
    return (_aligned(signer, domain) and b"from" in signed
            # l= lets anyone append to the signed body; RFC 8301 forbids trusting rsa-sha1
            and b"l" not in tags and tags.get(b"a") != b"rsa-sha1")


def _aligned(signer: str, domain: str) -> bool:
    """d= equals the address's domain or is a parent of it, and has at least two labels."""
    return signer.count(".") >= 1 and (domain == signer or domain.endswith("." + signer))


def _for_dkimpy(dns: DnsLookup) -> Callable[..., bytes | str | None]:
    """Adapt a one-argument lookup to dkimpy's dnsfunc(name, timeout=...) call."""
    def lookup(name: bytes, timeout: float = DNS_TIMEOUT) -> bytes | str | None:
        return dns(name)
    return lookup


def static_dns(records: Mapping[str, str]) -> DnsLookup:
    """A lookup answering TXT records from a mapping of DNS name to record, for closed networks."""
    table = {_record_name(name): value for name, value in records.items()}

    def lookup(name: bytes) -> str | None:
        try:
            return table.get(_record_name(name.decode("ascii")))
        except UnicodeDecodeError:
            return None
    return lookup


def _record_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def dns_from_file(path: Path) -> DnsLookup:
    """A lookup answering the TXT records in `path`: `name TXT-value` per line, `#` comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeError) as e:
        raise UsageError(f"{path}: cannot read DKIM key records: {e}") from None
    records: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, value = _parse_record(line, f"{path}:{number}")
        if _record_name(name) in records:
            raise UsageError(f"{path}:{number}: {name} is listed twice")
        records[_record_name(name)] = value
    return static_dns(records)


def _parse_record(line: str, where: str) -> tuple[str, str]:
    """One `name TXT-value` line; the value may be given as zone-file "quoted" "strings"."""
    name, value = (line.split(None, 1) + [""])[:2]
    value = _unquote(value.strip(), where)
    if "._domainkey." not in name.lower() or not value:
        raise UsageError(f"{where}: expected 'selector._domainkey.domain TXT-value', got {line.strip()!r}")
    try:
        tags = dkim.util.parse_tag_value(value.encode("ascii"))
    except (dkim.util.InvalidTagValueList, UnicodeError):
        tags = {}
    if b"p" not in tags:
        raise UsageError(f"{where}: {name}: the value is not a DKIM key record (no p= tag)")
    return name, value


def _unquote(value: str, where: str) -> str:
    """Join "a" "b" into ab as a zone file would; a value without quotes is taken as it is."""
    if not value.startswith('"'):
        return value
    parts = re.fullmatch(r'("[^"]*"\s*)+', value)
    if parts is None:
        raise UsageError(f"{where}: unbalanced quotes in the record value")
    return "".join(re.findall(r'"([^"]*)"', value))
