"""A worker's address never reaches a customer: in text, in attachment names or in attachment bytes."""

from __future__ import annotations

import base64
import dataclasses
import random

import pytest

from core.inbound import InboundAttachment
from core.privacy import FILENAME_REDACTED, PrivateAddresses, Screened
from core.reply_text import REDACTED

JANE = PrivateAddresses.of(["jane@corp.test"])
KAI = PrivateAddresses.of(["kai@xn--bcher-kva.test"])  # stored normalised, as normalize_address gives


@pytest.mark.parametrize("written", [
    "jane@corp.test",
    "JANE@CORP.TEST",
    "Jane@Corp.Test",
    "jane%40corp.test",
    "jane&#64;corp.test",
    "jane&#x40;corp.test",
    "jane&#X40;corp.test",
    "jane&commat;corp.test",
    "jane=40corp.test",
    "jane [at] corp [dot] test",
    "jane (AT) corp (dot) test",
    "jane at corp dot test",
    "jane @ corp.test",
    "jane\uff20corp.test",
    "%6A%61%6E%65%40%63%6F%72%70%2E%74%65%73%74",
    "&#106;&#97;&#110;&#101;&#64;&#99;&#111;&#114;&#112;&#46;&#116;&#101;&#115;&#116;",
    "jane+billing@corp.test",
])
def test_every_written_form_is_redacted(written: str) -> None:
    assert JANE.redact(f"write to {written} today") == f"write to {REDACTED} today"


def test_a_mailto_link_with_an_encoded_at_is_redacted() -> None:
    html = '<a href="mailto:jane%40corp.test">mail me</a>'
    assert JANE.redact(html) == f'<a href="mailto:{REDACTED}">mail me</a>'


@pytest.mark.parametrize("written", [
    "kai@bücher.test", "KAI@BÜCHER.TEST", "kai@xn--bcher-kva.test", "KAI@XN--BCHER-KVA.TEST",
    "kai%40b%C3%BCcher.test", "kai&#64;b&uuml;cher.test", "kai=40b=C3=BCcher.test",
])
def test_an_idn_address_stored_as_punycode_is_redacted_however_written(written: str) -> None:
    assert KAI.redact(f"({written})") == f"({REDACTED})"


@pytest.mark.parametrize("written", ["kai@xn--bcher-kva.test", "KAI@XN--BCHER-KVA.TEST", "Kai@Bücher.test"])
def test_an_idn_address_given_in_unicode_is_redacted_as_punycode_too(written: str) -> None:
    assert PrivateAddresses.of(["kai@bücher.test"]).redact(written) == REDACTED


def test_only_the_listed_addresses_are_private() -> None:
    text = "Write to help@corp.test or to jane@corp.test; corp.test is our site."
    assert JANE.redact(text) == f"Write to help@corp.test or to {REDACTED}; corp.test is our site."


def test_text_without_any_form_is_returned_unchanged() -> None:
    text = "Hello,\n\nyour order ships today. Mail help@corp.test at any time, 100% = done &amp; dusted.\n"
    assert JANE.redact(text) == text
    assert KAI.redact(text) == text


def test_the_longest_address_is_redacted_whole() -> None:
    private = PrivateAddresses.of(["jane@corp.test", "jane@corp.test.example"])
    assert private.redact("jane@corp.test.example") == REDACTED


def test_no_private_addresses_change_nothing() -> None:
    nobody = PrivateAddresses.of([])
    assert nobody.redact("jane@corp.test") == "jane@corp.test"
    assert not nobody.found_in(b"jane@corp.test")


def test_addresses_are_normalised_and_compared_by_value() -> None:
    assert PrivateAddresses.of(["  Jane@CORP.test "]) == JANE
    with pytest.raises(dataclasses.FrozenInstanceError):
        JANE.emails = ()  # type: ignore[misc]


@pytest.mark.parametrize("data", [
    b"From: jane@corp.test\r\n",
    b"JANE%40CORP.TEST",
    "kai@bücher.test".encode("utf-8"),
    "kai@bücher.test".encode("latin-1"),
    "KAI@BÜCHER.TEST".encode("utf-16"),
    "note: jane@corp.test".encode("utf-16-be"),
    b"\x01" + "note: jane@corp.test".encode("utf-16-le"),
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nmail jane=\r\n=40corp.test",
    b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(b"Reply-To: jane@corp.test\r\n"),
])
def test_an_address_is_found_in_bytes_in_any_likely_encoding(data: bytes) -> None:
    private = PrivateAddresses.of(["jane@corp.test", "kai@xn--bcher-kva.test"])
    assert private.found_in(data)


def test_bytes_without_an_address_are_clean() -> None:
    noise = random.Random(7).randbytes(200_000)
    assert not JANE.found_in(noise + b"help@corp.test" + "help@corp.test".encode("utf-16"))


def attachment(filename: str, content_type: str, data: bytes = b"harmless") -> InboundAttachment:
    return InboundAttachment(filename, content_type, data)


def test_a_harmless_attachment_is_kept_untouched() -> None:
    harmless = attachment("invoice.pdf", "application/pdf", b"%PDF-1.4\n(Total: 12 EUR) Tj\n%%EOF")
    screened = JANE.screen_attachments([harmless])
    assert screened == Screened(kept=(harmless,), notes=())
    assert screened.kept[0] is harmless


@pytest.mark.parametrize(("filename", "content_type"), [
    ("jane.vcf", "text/vcard"),
    ("card", "text/x-vcard"),
    ("card.txt", "text/directory"),
    ("Jane.VCF", "application/octet-stream"),
    ("jane.vcard", ""),
])
def test_a_contact_card_is_always_dropped(filename: str, content_type: str) -> None:
    screened = JANE.screen_attachments([attachment(filename, content_type, b"BEGIN:VCARD\r\nEND:VCARD")])
    assert screened.kept == ()
    assert screened.notes[0].startswith(f'dropped "{filename}": a contact card (')


def test_a_contact_card_note_names_its_type() -> None:
    card = "BEGIN:VCARD\r\nFN:Jane\r\nEMAIL:jane@corp.test\r\nEND:VCARD\r\n".encode("utf-16")
    screened = JANE.screen_attachments([attachment("jane.vcf", "text/vcard", card)])
    assert screened.notes == ('dropped "jane.vcf": a contact card (text/vcard) can carry your address',)


def test_a_utf16_vcard_is_seen_to_carry_the_address() -> None:
    card = "BEGIN:VCARD\r\nEMAIL;TYPE=work:JANE@CORP.TEST\r\nEND:VCARD\r\n".encode("utf-16")
    assert JANE.found_in(card)


@pytest.mark.parametrize(("filename", "content_type"), [
    ("fwd.eml", "message/rfc822"),
    ("headers.txt", "text/rfc822-headers"),
    ("status", "message/delivery-status"),
    ("old.EML", "application/octet-stream"),
    ("outlook.msg", "application/vnd.ms-outlook"),
])
def test_a_forwarded_mail_is_always_dropped(filename: str, content_type: str) -> None:
    screened = JANE.screen_attachments([attachment(filename, content_type, b"Subject: hi\r\n\r\nhello")])
    assert screened.kept == ()
    assert "a forwarded mail" in screened.notes[0] and "headers" in screened.notes[0]


def test_a_pdf_carrying_the_address_is_dropped() -> None:
    pdf = b"%PDF-1.4\n1 0 obj\n<< /Length 44 >>\nstream\nBT (Contact: Jane@Corp.Test) Tj ET\nendstream\n%%EOF"
    screened = JANE.screen_attachments([attachment("report.pdf", "application/pdf", pdf)])
    assert screened == Screened(kept=(), notes=('dropped "report.pdf": its content contains your address',))


def test_a_file_name_showing_the_address_is_renamed_and_said_so() -> None:
    notes_pdf = attachment("notes-from-jane@corp.test.pdf", "application/pdf", b"%PDF-1.4 nothing")
    screened = JANE.screen_attachments([notes_pdf])
    assert screened.kept == (dataclasses.replace(notes_pdf, filename=f"notes-from-{FILENAME_REDACTED}.pdf"),)
    assert screened.kept[0].data is notes_pdf.data
    assert screened.notes == (
        'renamed "notes-from-jane@corp.test.pdf" to "notes-from-address-removed.pdf"',)


def test_an_idn_form_in_a_file_name_is_renamed() -> None:
    screened = KAI.screen_attachments([attachment("KAI@BÜCHER.TEST.txt", "text/plain")])
    assert screened.kept[0].filename == f"{FILENAME_REDACTED}.txt"


def test_screening_keeps_order_and_drops_only_what_it_must() -> None:
    first, second = attachment("a.txt", "text/plain"), attachment("b.png", "image/png", b"\x89PNG\x00\x01")
    screened = JANE.screen_attachments([first, attachment("jane.vcf", "text/vcard"), second])
    assert screened.kept == (first, second)
    assert len(screened.notes) == 1


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\xff\xfe\x00", b"=\n=\r\n=", b"====", b"A" * 13, b"\xfe\xff\xd8\x00",
    random.Random(1).randbytes(4096),
])
def test_odd_data_never_raises(data: bytes) -> None:
    screened = JANE.screen_attachments([attachment("", "", data), InboundAttachment("x", "odd/;;", data)])
    assert len(screened.kept) == 2
