"""parse_message on odd input: it returns a clean, bounded value or raises UnparseableMessage.

mail-parser reads the mail; where it misreads a body (charsets, text inside a part kept whole) the
text comes from the part bytes instead, and anything mail-parser raises on is UnparseableMessage.
How long parsing takes is measured in bench/, never asserted here: a busy machine is no parser bug.
"""

from __future__ import annotations

import base64
import logging
import random
from datetime import timedelta
from dataclasses import fields, is_dataclass
from typing import Any

import pytest

from core.errors import UnparseableMessage
from core.inbound import Envelope, InboundMessage
from mailgate.deliver import pipe_envelope
from mailgate.importer import IMPORT_ENVELOPE
from mailgate.mime_parts import MAX_PARTS
from mailgate.parse import MAX_HEADER_SECTION, MAX_ID, MAX_REFERENCES, parse_message
from testkit import make_mail

IMPORTED = Envelope("import")
FROM_SMTP = Envelope("smtp", "customer@outside.test", ("support@example.com",))


def parse(raw: bytes, envelope: Envelope = IMPORTED) -> InboundMessage:
    """parse_message, held to what every caller relies on: every string storable."""
    message = parse_message(raw, envelope)
    assert_storable(message)
    return message


def assert_storable(value: Any) -> None:
    """No NUL (PostgreSQL refuses it) and no lone surrogate (no codec can write one), anywhere."""
    if isinstance(value, str):
        assert "\x00" not in value
        assert not any("\ud800" <= c <= "\udfff" for c in value), repr(value[:80])
    elif isinstance(value, (tuple, list)):
        for item in value:
            assert_storable(item)
    elif is_dataclass(value):
        for field in fields(value):
            assert_storable(getattr(value, field.name))


def lines(*text: str) -> bytes:
    return "\r\n".join(text).encode("utf-8")


def test_an_ordinary_mail_keeps_its_fields() -> None:
    mail = make_mail(subject="Printer on fire", body="Help, please.", cc="Bob <BOB@Customer.TEST>")
    parsed = parse(mail.as_bytes())
    assert parsed.message_id == mail["Message-ID"]
    assert (parsed.sender.email, parsed.sender.name) == ("alice@customer.test", "Alice")
    assert [a.email for a in parsed.cc] == ["bob@customer.test"]
    assert parsed.subject == "Printer on fire"
    assert parsed.text.strip() == "Help, please."
    assert parsed.date is not None and parsed.date.utcoffset() == timedelta(0)


def test_trace_fields_are_kept_in_order_under_their_own_names() -> None:
    raw = lines("Received: from relay.test by mx.test; Mon, 1 Jan 2024 00:00:00 +0000",
                "RECEIVED : from laptop", "  by relay.test", "From: x@customer.test", "Subject: hi",
                "Received: late", "", "Received: a body line, not a field")
    parsed = parse(raw)
    assert [name for name, _ in parsed.headers] == ["Received", "RECEIVED", "From", "Subject", "Received"]
    assert parsed.headers[1][1] == "from laptop  by relay.test"
    assert parsed.text.strip() == "Received: a body line, not a field"


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  "])
def test_empty_input_is_unparseable(raw: bytes) -> None:
    with pytest.raises(UnparseableMessage, match="empty"):
        parse_message(raw, IMPORTED)


def test_text_without_headers_is_unparseable() -> None:
    with pytest.raises(UnparseableMessage, match="no header fields"):
        parse_message(b"Just some words\nand more words, no header at all.\n", FROM_SMTP)


def test_no_sender_anywhere_is_unparseable_but_the_envelope_can_stand_in() -> None:
    raw = lines("Subject: who am I", "", "body")
    with pytest.raises(UnparseableMessage, match="no sender"):
        parse_message(raw, IMPORTED)
    assert parse(raw, FROM_SMTP).sender.email == "customer@outside.test"


def test_html_only_mail_gets_readable_text() -> None:
    raw = lines("From: a@customer.test", "Content-Type: text/html; charset=utf-8", "",
                "<html><body><p>The <b>printer</b> is on fire.</p><script>x()</script></body></html>")
    parsed = parse(raw)
    assert "<b>" in parsed.html
    assert "printer" in parsed.text and "<" not in parsed.text


def test_undecodable_charset_falls_back_and_says_so() -> None:
    raw = lines("From: a@customer.test", "Content-Type: text/plain; charset=x-no-such-charset", "",
                "") + "Grüße".encode("latin-1")
    parsed = parse(raw)
    assert parsed.text == "Grüße"
    assert "CharsetDecodeDefect" in parsed.defects


def test_bytes_wrong_for_the_declared_charset_still_read() -> None:
    raw = lines("From: a@customer.test", "Content-Type: text/plain; charset=utf-8", "", "") + b"caf\xe9 \xff\xfe"
    parsed = parse(raw)
    assert parsed.text.startswith("caf")
    assert "CharsetDecodeDefect" in parsed.defects


PUNYCODE_BOMB = base64.encodebytes(b"a" * 200_000 + b"-" + b"b" * 200_000)


@pytest.mark.parametrize("head", [
    b"Content-Type: text/plain; charset=PunyCode\r\nContent-Transfer-Encoding: base64",
    b"Content-Type: text/plain; charset*=''%70unycode\r\nContent-Transfer-Encoding: base64",
    b"Subject: =?punycode?b?" + base64.b64encode(b"a" * 80_000 + b"-" + b"b" * 80_000) + b"?=",
    b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*0*=pun; filename*1*=ycode''"
    + b"a" * 100_000,
])
def test_punycode_named_as_a_charset_is_unparseable_without_running_it(head: bytes) -> None:
    """punycode is a Python codec but no charset; mail-parser would run it, in quadratic time."""
    raw = b"From: a@customer.test\r\n" + head + b"\r\n\r\n" + PUNYCODE_BOMB
    with pytest.raises(UnparseableMessage, match="punycode"):
        parse_message(raw, IMPORTED)


def test_mail_about_punycode_is_still_filed() -> None:
    raw = lines("From: a@customer.test", "Subject: punycode?", "Content-Type: text/plain; charset=utf-8", "",
                "How does punycode work? The filename*=utf-8'' form is RFC 2231.")
    assert "punycode work" in parse(raw).text


def test_nul_bytes_are_stripped_everywhere() -> None:
    raw = (b"From: Al\x00ice <alice@customer.test>\r\nSubject: fire\x00!\r\nX-Odd: a\x00b\r\n"
           b"Message-ID: <id\x00@customer.test>\r\n\r\nhelp\x00 me\r\n")
    parsed = parse(raw)
    assert parsed.subject == "fire!"
    assert parsed.text.strip() == "help me"
    assert ("X-Odd", "ab") in parsed.headers
    assert parsed.raw == raw


def test_raw_8bit_headers_are_read_as_utf8_or_windows_1252() -> None:
    raw = ("From: \"Jöhn Doe\" <jdöe@mächine.example>\r\nSubject: Säying Hello\r\n\r\nbody\r\n").encode("utf-8")
    parsed = parse(raw)
    assert parsed.subject == "Säying Hello"
    assert parsed.sender.name == "Jöhn Doe"
    assert parsed.sender.email == "jdöe@" + "mächine.example".encode("idna").decode()
    latin = parse(b"From: a@customer.test\r\nSubject: Gr\xfc\xdfe\r\n\r\nbody\r\n")
    assert latin.subject == "Grüße"


def test_encoded_words_with_unknown_charset_do_not_fail() -> None:
    parsed = parse(lines("From: =?x-unknown?B?QWxpY2U=?= <a@customer.test>", "Subject: =?NONE?B?VEVTVA=?=",
                         "", "body"))
    assert parsed.sender.email == "a@customer.test"
    assert parsed.subject


def test_surrogates_from_broken_utf7_are_replaced() -> None:
    raw = lines("From: a@customer.test", "Content-Type: text/plain; charset=utf-7", "", "+2D3cAQ- and +2D0-")
    assert "and" in parse(raw).text


def test_attachment_bytes_are_exact() -> None:
    data = bytes(range(256)) * 64
    mail = make_mail(attachments=[("blob.bin", "application/octet-stream", data),
                                  ("notes.txt", "text/plain", "Zeile 1\r\nZeile 2\r\n".encode("utf-8"))])
    parsed = parse(mail.as_bytes())
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("blob.bin", "application/octet-stream"), ("notes.txt", "text/plain")]
    assert parsed.attachments[0].data == data
    assert parsed.attachments[1].data == "Zeile 1\r\nZeile 2\r\n".encode("utf-8")
    assert parsed.text.strip() == "Help, please."


def test_attached_message_is_kept_as_one_attachment() -> None:
    inner = make_mail(subject="Original", body="inner body")
    outer = make_mail(subject="Fwd: Original", body="see attached")
    outer.add_attachment(inner)
    parsed = parse(outer.as_bytes())
    (attached,) = parsed.attachments
    assert attached.content_type == "message/rfc822"
    assert b"Subject: Original" in attached.data
    assert "inner body" not in parsed.text


def test_delivery_report_fields_stay_out_of_the_text() -> None:
    """mail-parser reads the parts of a message/delivery-status as text; it is kept as one file."""
    report = base64.b64encode(b"Final-Recipient: rfc822; gone@customer.test\r\nAction: failed\r\n").decode()
    raw = lines("From: MAILER-DAEMON@host.test", 'Content-Type: multipart/report; report-type=delivery-status;'
                ' boundary="b"', "", "--b", "Content-Type: text/plain", "", "Your mail could not be delivered.", "--b",
                "Content-Type: message/delivery-status", "Content-Transfer-Encoding: base64", "", report, "--b--")
    parsed = parse(raw)
    assert parsed.text == "Your mail could not be delivered."
    assert [a.content_type for a in parsed.attachments] == ["message/delivery-status"]


def test_named_inline_text_is_shown_and_kept_as_a_file() -> None:
    """As mail clients do (and mail-parser): inline text is read, and its file is kept too."""
    raw = lines("From: a@customer.test", 'Content-Type: multipart/mixed; boundary="b"', "", "--b",
                "Content-Type: text/plain", "", "See the log below.", "--b", "Content-Type: text/plain",
                'Content-Disposition: inline; filename="printer.log"', "", "paper jam in tray 2", "--b--")
    parsed = parse(raw)
    assert parsed.text == "See the log below.\npaper jam in tray 2"
    assert [(a.filename, a.data) for a in parsed.attachments] == [("printer.log", b"paper jam in tray 2")]


@pytest.mark.parametrize(("head", "body", "text"), [
    ("charset=iso-2022-jp\r\nContent-Transfer-Encoding: 7bit", "日本語です".encode("iso-2022-jp"), "日本語です"),
    ("charset=utf-7", "Gr\u00fc\u00dfe".encode("utf-7"), "Gr\u00fc\u00dfe"),
    ("charset=iso-8859-1", "\u201cquoted\u201d \u20ac".encode("cp1252"), "\u201cquoted\u201d \u20ac"),
    ("charset=gb2312", "\u6253\u5370\u673a \u9555".encode("gb18030"), "\u6253\u5370\u673a \u9555"),
    ("format=flowed", "Gr\u00fc\u00dfe".encode("cp1252"), "Gr\u00fc\u00dfe"),
])
def test_charsets_mail_parser_misreads_are_read_from_the_part_bytes(head: str, body: bytes, text: str) -> None:
    """ISO-2022-JP and UTF-7 it leaves undecoded, Windows-1252 labelled Latin-1 it reads as C1 controls,
    GBK labelled GB2312 and undeclared 8-bit text it replaces with U+FFFD."""
    raw = lines("From: a@customer.test", f"Content-Type: text/plain; {head}", "", "") + body
    assert parse(raw).text == text


def test_mail_parser_failure_is_unparseable_and_says_so() -> None:
    raw = lines("From: a@customer.test", "Content-Type: multipart/mixed; boundary=outer", "", "--outer",
                "Content-Type: multipart/mixed; boundary=inner", "", "--outer", "Content-Type: text/plain", "", "x")
    with pytest.raises(UnparseableMessage, match="^mail-parser cannot read it: AttributeError"):
        parse_message(raw, IMPORTED)


def test_mail_parser_defect_categories_are_kept() -> None:
    parsed = parse(lines("From: a@customer.test", "Date: Thu, 32 Foo 2021 99:99:99 +9999", "", "body"))
    assert "DateHeaderDefect" in parsed.defects


def test_mail_parser_warnings_stay_out_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    mail = make_mail(attachments=[("a.png", "image/png", b"\x89PNG" * 10)])
    mail.add_attachment(b"BEGIN:VCALENDAR", maintype="text", subtype="calendar")
    with caplog.at_level(logging.DEBUG):
        parse(mail.as_bytes())
    assert not [r for r in caplog.records if r.name.startswith("mailparser")]


def test_multipart_without_boundary_keeps_its_text() -> None:
    raw = lines("From: a@customer.test", "Content-Type: multipart/mixed", "", "The words are still here.")
    parsed = parse(raw)
    assert "still here" in parsed.text
    assert "NoBoundaryInMultipartDefect" in parsed.defects


def test_address_group_that_breaks_the_modern_stdlib_parser() -> None:
    raw = lines("From: Mail Delivery <postmaster@host.test>", "To: undisclosed-recipients:;",
                "Cc: group: a@customer.test, b@customer.test;", "", "bounce")
    parsed = parse(raw)
    assert [a.email for a in parsed.cc] == ["a@customer.test", "b@customer.test"]
    assert parsed.is_automated


def test_broken_from_still_yields_the_address_in_it() -> None:
    parsed = parse(lines("From: Big Bug bb@bug.com", "", "body"))
    assert parsed.sender.email == "bb@bug.com"


def test_deeply_nested_comments_in_from_do_not_recurse_the_parser_to_death() -> None:
    raw = lines("From: " + "(" * 5000 + " a@customer.test", "", "body")
    assert parse(raw).sender.email == "a@customer.test"


def test_obsolete_space_before_colon_is_accepted() -> None:
    parsed = parse(lines("From  : Alice <a@customer.test>", "Subject   : hello", "", "body"))
    assert (parsed.sender.email, parsed.subject) == ("a@customer.test", "hello")


def test_byte_order_mark_before_the_headers_is_ignored() -> None:
    assert parse(b"\xef\xbb\xbf" + lines("From: a@customer.test", "", "body")).sender.email == "a@customer.test"


def test_over_long_header_values_are_bounded() -> None:
    raw = lines("From: a@customer.test", "Subject: " + "=?utf-8?q?caf=C3=A9?= " * 3_000,
                "To: " + ", ".join(f"<p{i}@customer.test>" for i in range(4_000)),
                "Message-ID: <" + "i" * 5000 + "@customer.test>",
                "References: " + " ".join(f"<r{i}@customer.test>" for i in range(3000)), "", "body")
    assert len(raw) < MAX_HEADER_SECTION
    parsed = parse(raw)
    assert len(parsed.subject) <= 998 and parsed.subject.startswith("cafécafé")
    assert len(parsed.message_id) <= MAX_ID
    assert all(len(value) <= 16_384 for _, value in parsed.headers)
    assert len(parsed.references) == MAX_REFERENCES
    assert parsed.references[0] == "<r0@customer.test>" and parsed.references[-1] == "<r2999@customer.test>"


@pytest.mark.parametrize("header", ["To: " + ", ".join(f"<p{i}@customer.test>" for i in range(60_000)),
                                    "Subject: " + "=?utf-8?q?caf=C3=A9?=\r\n " * 60_000])
def test_a_header_section_over_the_limit_is_unparseable_at_once(header: str) -> None:
    """Beyond it mail-parser takes seconds a megabyte (addresses) or quadratic time (encoded words)."""
    raw = lines("From: a@customer.test", header, "", "body")
    with pytest.raises(UnparseableMessage, match="header section over 256 KiB"):
        parse_message(raw, IMPORTED)


def test_deep_nesting_is_cut_with_a_defect_not_a_crash() -> None:
    depth = 200
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    tail = "".join(f"\r\n--b{i}--" for i in reversed(range(depth)))
    raw = ("From: a@customer.test\r\n" + head + "Content-Type: text/plain\r\n\r\ndeep" + tail).encode()
    try:
        parsed = parse(raw)
    except UnparseableMessage:
        return  # the stdlib's own parser may give up first: quarantine is an acceptable end
    assert "NestingTooDeepDefect" in parsed.defects


def test_thousands_of_parts_are_cut_with_a_defect() -> None:
    parts = "".join(f"--b\r\nContent-Type: application/octet-stream; name=f{i}.bin\r\n\r\nxx\r\n"
                    for i in range(5000))
    raw = ("From: a@customer.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + "--b--\r\n")
    parsed = parse(raw.encode())
    assert len(parsed.attachments) == MAX_PARTS
    assert "TooManyPartsDefect" in parsed.defects


def test_huge_html_only_mail_gets_text() -> None:
    html = "<table>" + "<tr><td>a</td><td>b</td></tr>" * 60_000 + "</table>"
    parsed = parse(lines("From: a@customer.test", "Content-Type: text/html", "", html))
    assert parsed.html.strip() == html and parsed.text
    assert "HtmlTextCutDefect" in parsed.defects


@pytest.mark.parametrize("date", ["Fri, 31 Dec 9999 23:59:59 -1200",
                                  "not a date", "Thu, 32 Foo 2021 99:99:99 +9999"])
def test_impossible_dates_become_none(date: str) -> None:
    assert parse(lines("From: a@customer.test", f"Date: {date}", "", "body")).date is None


def test_mangled_mail_only_ever_raises_unparseable() -> None:
    """Random byte damage to a real-looking mail: the parser never lets another error out."""
    mail = make_mail(attachments=[("a.pdf", "application/pdf", b"%PDF-1.4 " * 50)], cc="Bob <bob@customer.test>")
    del mail["Subject"]
    mail["Subject"] = "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?iso-8859-1?q?M=FCnchen?="
    original = mail.as_bytes()
    rng = random.Random(20261125)
    for _ in range(300):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 40)):
            position = rng.randrange(len(damaged))
            damaged[position:position + rng.randint(0, 3)] = rng.choice(
                [b"", b"\x00", b"\xff", b":", b"(", b"\r\n", b"=?", b"--", b"\r\n\r\n", b"<", b'"'])
        try:
            parse(bytes(damaged), FROM_SMTP)
        except UnparseableMessage:
            pass


def test_base64_garbage_in_an_attachment_is_kept_not_fatal() -> None:
    raw = lines("From: a@customer.test", 'Content-Type: multipart/mixed; boundary="b"', "", "--b",
                "Content-Type: text/plain", "", "hello", "--b",
                'Content-Type: application/pdf; name="x.pdf"', "Content-Transfer-Encoding: base64", "",
                base64.b64encode(b"%PDF").decode() + "!!@@not base64", "--b--")
    parsed = parse(raw)
    assert parsed.text.strip() == "hello"
    assert parsed.attachments[0].filename == "x.pdf"


# RFC 3834: where automatic replies may go (return_path), and which mail is from a robot (is_automated).
# Each Envelope is built as its source builds it: mailgate.smtp, the deliver pipe, the IMAP poller, import.

def smtp(mail_from: str) -> Envelope:
    return Envelope("smtp", mail_from, ("support@example.com",))


IMAP = Envelope("imap", "", ("support@example.com",))


def with_fields(*fields: str) -> bytes:
    """An ordinary customer mail (From alice@customer.test) with these header fields on top."""
    return "".join(f"{field}\r\n" for field in fields).encode() + make_mail().as_bytes()


@pytest.mark.parametrize("field", ["X-Autoreply: yes", "X-Autorespond: Out of office",
                                   "X-Auto-Response-Suppress: All", "Precedence: auto_reply",
                                   "Precedence: bulk", "Precedence: junk", "Precedence: list",
                                   "Auto-Submitted: auto-replied", "List-Id: <announce.lists.test>"])
def test_robot_fields_mark_the_mail_automated_whatever_the_return_path(field: str) -> None:
    parsed = parse(with_fields("Return-Path: <alice@customer.test>", field))
    assert parsed.is_automated
    assert parsed.return_path == "alice@customer.test"


@pytest.mark.parametrize("field", ["Auto-Submitted: no", "Precedence: first-class"])
def test_a_customer_mail_with_a_return_path_is_not_automated(field: str) -> None:
    parsed = parse(with_fields("Return-Path: <alice@customer.test>", field), smtp("alice@customer.test"))
    assert not parsed.is_automated


@pytest.mark.parametrize("envelope, fields", [
    (smtp(""), ()),  # mailgate.smtp's `mail_from or ""`
    (smtp("<>"), ("Return-Path: <alice@customer.test>",)),  # aiosmtpd's MAIL FROM:<>; the envelope wins
    (pipe_envelope("", ("support@example.com",)), ("Return-Path: <alice@customer.test>",)),
    (pipe_envelope("<>", ("support@example.com",)), ()),
    (IMAP, ("Return-Path: <>",)),
    (IMPORT_ENVELOPE, ("Return-Path: <>",)),
    (IMPORT_ENVELOPE, ("Return-Path: < > (bounce)",)),
    (IMAP, ("Return-Path: <>", "Return-Path: <alice@customer.test>")),  # the topmost, the final MTA's, counts
], ids=["smtp-empty", "smtp-angle", "deliver-empty", "deliver-angle", "imap", "import", "import-spaced",
        "imap-topmost"])
def test_the_null_path_from_any_source_is_automated_with_no_return_path(envelope: Envelope,
                                                                        fields: tuple[str, ...]) -> None:
    parsed = parse(with_fields(*fields), envelope)
    assert parsed.is_automated
    assert parsed.return_path == ""
    assert parsed.sender.email == "alice@customer.test"  # still filed under its author


@pytest.mark.parametrize("envelope, fields", [
    (smtp("Bounces@Customer.TEST"), ("Return-Path: <other@elsewhere.test>",)),  # the envelope wins
    (pipe_envelope("<Bounces@Customer.TEST>", ("support@example.com",)), ("Return-Path: <>",)),
    (pipe_envelope(None, ("support@example.com",)), ("Return-Path: <Bounces@Customer.TEST>",)),
    (IMAP, ("Return-Path: <Bounces@Customer.TEST>", "Return-Path: <>")),
    (IMPORT_ENVELOPE, ("Return-Path: bounces@customer.test (no angle brackets)",)),
], ids=["smtp", "deliver-from", "deliver-no-from", "imap", "import"])
def test_the_return_path_is_the_envelope_sender_else_the_topmost_field(envelope: Envelope,
                                                                       fields: tuple[str, ...]) -> None:
    parsed = parse(with_fields(*fields), envelope)
    assert parsed.return_path == "bounces@customer.test"
    assert not parsed.is_automated


@pytest.mark.parametrize("envelope, fields", [
    (pipe_envelope(None, ()), ()), (IMAP, ()), (IMPORT_ENVELOPE, ()),
    (IMPORT_ENVELOPE, ("Return-Path: not an address",)),
    (pipe_envelope("not an address", ()), ("Return-Path: <alice@customer.test>",)),
], ids=["deliver", "imap", "import", "import-garbage", "deliver-garbage"])
def test_no_usable_return_path_is_unknown_not_null_and_never_the_from(envelope: Envelope,
                                                                      fields: tuple[str, ...]) -> None:
    parsed = parse(with_fields(*fields), envelope)
    assert parsed.return_path == ""
    assert not parsed.is_automated
    assert parsed.sender.email == "alice@customer.test"


def test_a_huge_return_path_field_is_read() -> None:
    parsed = parse(with_fields("Return-Path: " + " " * 100_000 + "(x) " * 30_000 + "<"))
    assert parsed.return_path == ""


# Text as written (issue 11): more in test_text_as_written.py.

def test_unlabelled_iso_2022_jp_is_read_as_japanese() -> None:
    raw = lines("From: a@customer.test", "", "") + "請求書を送ります".encode("iso2022_jp")
    assert parse(raw).text == "請求書を送ります"


def test_escape_sequences_that_are_no_iso_2022_stay_as_written() -> None:
    raw = lines("From: a@customer.test", "", "colour \x1b[31mred\x1b[0m log")
    assert parse(raw).text == "colour \x1b[31mred\x1b[0m log"


def test_trace_fields_do_not_decide_the_charset_of_the_others() -> None:
    """Relays write Received fields, not the sender's client: their stray bytes are no evidence."""
    raw = (b"Received: from relay (\xff\xfe\xfd junk \xa4\xa4\xa4) by mx\r\nFrom: a@customer.test\r\n"
           + "Subject: 還在用信用卡嗎".encode("big5") + b"\r\n\r\nbody\r\n")
    assert parse(raw).subject == "還在用信用卡嗎"


def test_html_with_thousands_of_elements_is_cut_by_element_count() -> None:
    html = "<p>" + "<span>w</span>" * 40_000 + "</p>"
    parsed = parse(lines("From: a@customer.test", "Content-Type: text/html", "", html))
    assert parsed.text.startswith("www") and "HtmlTextCutDefect" in parsed.defects


def test_random_bytes_under_any_label_are_read_without_error() -> None:
    """Every decoding path (labels, detection, raw 8-bit fields, ISO-2022-JP) on random bytes: text."""
    rng = random.Random(20261130)
    labels = ["utf-8", "iso-8859-1", "iso-8859-2", "us-ascii", "iso-2022-jp", "gb2312", "shift_jis", "x-unknown", None]
    pieces = [b"\x1b$B", b"\x1b(B", b"\x1b(I", b"\xef\xbf\xbd", b"\xc2\x85", b"\x81", b"\x93", "Grüße".encode(),
              "テスト".encode("cp932"), "Привет".encode("koi8_r"), b"plain words ", b"\r\n"]
    for _ in range(200):
        body = b"".join(rng.choice(pieces) if rng.random() < 0.7 else bytes([rng.randrange(256)])
                        for _ in range(rng.randint(1, 60)))
        label = rng.choice(labels)
        head = [b"From: a@customer.test", b"Subject: " + body[:30].replace(b"\r", b"").replace(b"\n", b"")]
        if label:
            head.append(f"Content-Type: text/{rng.choice(['plain', 'html'])}; charset={label}".encode())
        parsed = parse(b"\r\n".join(head) + b"\r\n\r\n" + body)
        assert isinstance(parsed.text, str)
