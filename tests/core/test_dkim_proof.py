"""A DKIM signature proves a sender only when it verifies, is aligned with the address and signs From."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import dkim
import pytest
from dkim.canonicalization import CanonicalizationPolicy

from core.dkim_proof import MAX_MESSAGE_BYTES, MAX_VERIFIED, DnsLookup, dkim_proves, dns_from_file, static_dns
from core.errors import UsageError

MAIL = b"""From: Jane Doe <jane@corp.test>
To: Helpdesk <help@postdesk.test>
Subject: Printer on the 3rd floor is jammed again
Date: Tue, 14 May 2024 09:12:03 +0000
Message-ID: <20240514091203.4711@mail.corp.test>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello,

the printer next to the kitchen shows "paper jam in tray 2" again.
I opened every flap I could find; there is no paper anywhere.

-- 
Jane Doe, Accounting
"""
RECEIVED = b"Received: from mail.corp.test (mail.corp.test [192.0.2.7]) by mx.postdesk.test; Tue, 14 May 2024 09:12:04 +0000\n"


@dataclass(frozen=True)
class RsaKey:
    private_pem: bytes
    public_b64: str

    @property
    def record(self) -> str:
        return f"v=DKIM1; k=rsa; p={self.public_b64}"


@dataclass
class CountingDns:
    """Answers from a mapping and remembers every name asked for."""

    records: dict[str, str]
    asked: list[bytes] = field(default_factory=list)

    def __call__(self, name: bytes) -> bytes | str | None:
        self.asked.append(name)
        return static_dns(self.records)(name)


@pytest.fixture(scope="module")
def key() -> RsaKey:
    # `cryptography` is not installed; openssl is. -traditional: dkimpy reads PKCS#1 PEM only.
    private = subprocess.run(["openssl", "genrsa", "-traditional", "2048"], capture_output=True, check=True).stdout
    public = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=private,
                            capture_output=True, check=True).stdout
    return RsaKey(private, base64.b64encode(public).decode("ascii"))


@pytest.fixture
def dns(key: RsaKey) -> CountingDns:
    return CountingDns({"sel._domainkey.corp.test": key.record, "sel._domainkey.test": key.record})


def eol(message: bytes, ending: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n").replace(b"\n", ending)


def signed(key: RsaKey, message: bytes = MAIL, domain: bytes = b"corp.test", ending: bytes = b"\r\n",
           **options: object) -> bytes:
    """`message` as corp.test's outbound server signs it and our MX receives it (Received on top)."""
    message = eol(message, ending)
    signature = dkim.sign(message, b"sel", domain, key.private_pem, linesep=ending, **options)
    return eol(RECEIVED, ending) + signature + message


def test_an_aligned_signature_that_verifies_proves_the_sender(key: RsaKey, dns: CountingDns) -> None:
    assert dkim_proves(signed(key), "jane@corp.test", dns)
    assert dns.asked == [b"sel._domainkey.corp.test."]


@pytest.mark.parametrize("email", ["jane@mail.corp.test", "Jane@CORP.Test", "jane@corp.test."])
def test_the_address_may_be_in_a_subdomain_of_d_and_is_compared_normalised(
        key: RsaKey, dns: CountingDns, email: str) -> None:
    assert dkim_proves(signed(key), email, dns)


def test_an_internationalised_domain_is_compared_idna_encoded(key: RsaKey) -> None:
    dns = static_dns({"sel._domainkey.xn--bcher-kva.test": key.record})
    mail = signed(key, MAIL.replace(b"corp.test", b"xn--bcher-kva.test"), domain=b"xn--bcher-kva.test")
    assert dkim_proves(mail, "jane@bücher.test", dns)


@pytest.mark.parametrize("email", ["jane@evil.test", "jane@notcorp.test", "jane@test", "not an address"])
def test_a_signature_of_another_domain_proves_nothing_and_costs_no_lookup(
        key: RsaKey, dns: CountingDns, email: str) -> None:
    assert not dkim_proves(signed(key), email, dns)
    assert dns.asked == []


def test_a_parent_address_is_not_proven_by_a_subdomain_signature(key: RsaKey) -> None:
    dns = static_dns({"sel._domainkey.mail.corp.test": key.record})
    assert not dkim_proves(signed(key, domain=b"mail.corp.test"), "jane@corp.test", dns)


def test_a_single_label_signing_domain_never_aligns(key: RsaKey, dns: CountingDns) -> None:
    mail = signed(key, MAIL.replace(b"jane@corp.test", b"jane@test"), domain=b"test")
    assert not dkim_proves(mail, "jane@test", dns)
    assert dns.asked == []


def test_a_body_altered_after_signing_is_not_proven(key: RsaKey, dns: CountingDns) -> None:
    mail = signed(key).replace(b"no paper anywhere", b"please reset my password to hunter2")
    assert not dkim_proves(mail, "jane@corp.test", dns)


def test_a_from_header_altered_after_signing_is_not_proven(key: RsaKey, dns: CountingDns) -> None:
    mail = signed(key).replace(b"From: Jane Doe <jane@corp.test>", b"From: Boss <boss@corp.test>")
    assert not dkim_proves(mail, "boss@corp.test", dns)


def test_a_second_from_header_added_after_signing_is_not_proven(key: RsaKey, dns: CountingDns) -> None:
    mail = signed(key).replace(b"To: Helpdesk", b"From: Boss <boss@corp.test>\r\nTo: Helpdesk")
    assert not dkim_proves(mail, "boss@corp.test", dns)


def test_a_mail_without_signature_is_not_proven_and_costs_no_lookup(dns: CountingDns) -> None:
    assert not dkim_proves(eol(RECEIVED + MAIL, b"\r\n"), "jane@corp.test", dns)
    assert dns.asked == []


@pytest.mark.parametrize("answer", [None, "", "v=DKIM1; k=rsa; p=", "v=DKIM1; k=rsa; p=bm90IGEga2V5", "garbage"])
def test_a_missing_or_broken_key_record_is_not_proof(key: RsaKey, answer: str | None) -> None:
    assert not dkim_proves(signed(key), "jane@corp.test", lambda name: answer)


def test_a_failing_lookup_is_not_proof(key: RsaKey) -> None:
    def unreachable(name: bytes) -> bytes | str | None:
        raise OSError("resolver unreachable")
    assert not dkim_proves(signed(key), "jane@corp.test", unreachable)


def test_an_interrupt_during_the_lookup_is_not_swallowed(key: RsaKey) -> None:
    def interrupted(name: bytes) -> bytes | str | None:
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        dkim_proves(signed(key), "jane@corp.test", interrupted)


@pytest.mark.parametrize("header", [
    b"DKIM-Signature: garbage",
    b"DKIM-Signature: ;;==;;",
    b"DKIM-Signature: v=1; d=corp.test; s=sel; h=from",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=corp.test; s=sel; h=from; bh=!!!; b=???",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=corp.test; d=corp.test; s=sel; h=from; bh=AAAA; b=AAAA",
    b"DKIM-Signature: v=1; a=rsa-sha256; c=odd/odd; d=corp.test; s=sel; h=from; bh=AAAA; b=AAAA",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=corp.test; s=sel; h=from; l=huge; bh=AAAA; b=AAAA",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=c\xc3orp.test; s=sel; h=from; bh=AAAA; b=AAAA",
])
def test_a_malformed_signature_is_not_proof(dns: CountingDns, header: bytes) -> None:
    assert not dkim_proves(eol(header + b"\n" + MAIL, b"\r\n"), "jane@corp.test", dns)


def test_headers_that_cannot_be_parsed_are_not_proof(key: RsaKey, dns: CountingDns) -> None:
    assert not dkim_proves(b"\x00 not a header\r\n" + signed(key), "jane@corp.test", dns)


@pytest.mark.parametrize(("signed_with", "delivered_with"),
                         [(b"\r\n", b"\r\n"), (b"\n", b"\n"), (b"\r\n", b"\n"), (b"\n", b"\r\n")])
def test_crlf_and_lf_line_endings_both_verify(key: RsaKey, dns: CountingDns,
                                              signed_with: bytes, delivered_with: bytes) -> None:
    mail = eol(signed(key, ending=signed_with), delivered_with)
    assert dkim_proves(mail, "jane@corp.test", dns)


def test_a_signature_that_does_not_cover_from_is_not_proof(key: RsaKey, dns: CountingDns) -> None:
    mail = _signed_without_from(key)
    assert dkim.verify(mail, dnsfunc=lambda name, timeout=5: dns(name))  # dkimpy itself does not insist on From
    assert not dkim_proves(mail, "jane@corp.test", dns)


def test_a_body_length_limited_signature_is_not_proof(key: RsaKey, dns: CountingDns) -> None:
    # l= lets anyone append text below the signed body and keep the signature valid
    mail = signed(key, length=True) + b"\r\nP.S. Also wire 10,000 EUR to IBAN XX00 0000.\r\n"
    assert dkim.verify(mail, dnsfunc=lambda name, timeout=5: dns(name))
    assert not dkim_proves(mail, "jane@corp.test", dns)


def test_an_rsa_sha1_signature_is_not_proof(key: RsaKey, dns: CountingDns) -> None:
    assert not dkim_proves(signed(key, signature_algorithm=b"rsa-sha1"), "jane@corp.test", dns)


def test_a_later_aligned_signature_still_proves(key: RsaKey, dns: CountingDns) -> None:
    forwarded = eol(b"DKIM-Signature: v=1; a=rsa-sha256; d=list.test; s=x; h=from; bh=AAAA; b=AAAA\n", b"\r\n")
    assert dkim_proves(forwarded + signed(key), "jane@corp.test", dns)
    assert dns.asked == [b"sel._domainkey.corp.test."]


@pytest.mark.parametrize(("stale", "proven"), [(MAX_VERIFIED - 1, True), (MAX_VERIFIED, False)])
def test_at_most_a_few_signatures_are_verified(key: RsaKey, dns: CountingDns, stale: int, proven: bool) -> None:
    mail = signed(key)
    for _ in range(stale):  # signatures by a retired selector, added above the good one
        mail = dkim.sign(mail, b"old", b"corp.test", key.private_pem) + mail
    assert dkim_proves(mail, "jane@corp.test", dns) is proven
    assert len(dns.asked) == min(stale + 1, MAX_VERIFIED)


def test_a_huge_mail_is_not_checked(key: RsaKey, dns: CountingDns) -> None:
    mail = signed(key) + b"x" * MAX_MESSAGE_BYTES
    assert not dkim_proves(mail, "jane@corp.test", dns)
    assert dns.asked == []


def test_an_ed25519_signature_proves_the_sender() -> None:
    nacl_signing = pytest.importorskip(
        "nacl.signing", reason="dkimpy needs PyNaCl for ed25519 and it is not installed in the venv")
    seed = nacl_signing.SigningKey.generate()
    private = base64.b64encode(bytes(seed))
    public = base64.b64encode(bytes(seed.verify_key)).decode("ascii")
    dns = static_dns({"ed._domainkey.corp.test": f"v=DKIM1; k=ed25519; p={public}"})
    mail = eol(MAIL, b"\r\n")
    mail = dkim.sign(mail, b"ed", b"corp.test", private, signature_algorithm=b"ed25519-sha256") + mail
    assert dkim_proves(mail, "jane@corp.test", dns)
    assert not dkim_proves(mail.replace(b"kitchen", b"lobby"), "jane@corp.test", dns)


def test_static_dns_answers_names_however_they_are_written(key: RsaKey) -> None:
    lookup = static_dns({"Sel._DomainKey.Corp.Test.": key.record})
    assert lookup(b"sel._domainkey.corp.test.") == key.record
    assert lookup(b"SEL._domainkey.corp.test") == key.record
    assert lookup(b"other._domainkey.corp.test.") is None
    assert lookup(b"\xff._domainkey.corp.test.") is None


def test_records_are_read_from_a_file(key: RsaKey, tmp_path: Path) -> None:
    half = len(key.public_b64) // 2
    path = tmp_path / "dkim-keys.txt"
    path.write_text(
        "# keys of the mail servers on the closed network\n"
        "\n"
        f"sel._domainkey.corp.test {key.record}\n"
        f'  old._domainkey.corp.test\t"v=DKIM1; k=rsa; " "p={key.public_b64[:half]}" "{key.public_b64[half:]}"\n')
    lookup: DnsLookup = dns_from_file(path)
    assert lookup(b"sel._domainkey.corp.test.") == key.record
    assert lookup(b"old._domainkey.corp.test.") == key.record
    assert dkim_proves(signed(key), "jane@corp.test", lookup)


@pytest.mark.parametrize(("line", "problem"), [
    ("sel._domainkey.corp.test", "expected"),
    ("corp.test v=DKIM1; k=rsa; p=AAAA", "expected"),
    ("sel._domainkey.corp.test hello world", "not a DKIM key record"),
    ('sel._domainkey.corp.test "v=DKIM1; p=AAAA', "unbalanced quotes"),
    ("sel._domainkey.corp.test v=DKIM1; p=AAAA\nSEL._domainkey.corp.test. v=DKIM1; p=BBBB", "listed twice"),
])
def test_a_malformed_record_file_is_refused_naming_file_and_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "dkim-keys.txt"
    path.write_text(f"# one comment line\n{line}\n")
    with pytest.raises(UsageError) as refused:
        dns_from_file(path)
    message = str(refused.value)
    assert message.startswith(f"{path}:{1 + line.count(chr(10)) + 1}: ")
    assert problem in message and "\n" not in message


def test_a_missing_record_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="dkim-keys.txt"):
        dns_from_file(tmp_path / "dkim-keys.txt")


def _signed_without_from(key: RsaKey) -> bytes:
    """A valid signature over Subject only; dkim.sign refuses to make one, so it is built by hand."""
    message = eol(MAIL, b"\r\n")
    signer = dkim.DKIM(message)
    signer.hasher = hashlib.sha256
    canon = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    body_hash = base64.b64encode(hashlib.sha256(canon.canonicalize_body(signer.body)).digest())
    fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"), (b"d", b"corp.test"),
              (b"s", b"sel"), (b"h", b"subject"), (b"bh", body_hash), (b"b", b"")]
    private = dkim.crypto.parse_pem_private_key(key.private_pem)
    return b"DKIM-Signature: " + signer.gen_header(fields, (b"subject",), canon, b"DKIM-Signature", private) + message

