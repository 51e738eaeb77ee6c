"""Text as written (issue 11, items 4 and 10): what the sender wrote is what a worker reads.

Each mail here is written for its test: charsets mail clients get wrong (a bad byte, a label too
narrow or missing, raw 8-bit header fields), HTML-only mail (accents, plain text rather than
Markdown), and a sender whose local part is quoted.
"""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest

from core.addresses import normalize_address
from core.db import Database
from core.inbound import Envelope, InboundMessage
from core.settings import Settings
from mailgate.outbox_sender import OutboxSender
from mailgate.parse import parse_message
from testkit import Sink, json_in_process, run_in_process

IMPORTED = Envelope("import")
C1 = re.compile("[\x80-\x9f]")
MOJIBAKE = re.compile("[ÃÐÑâ][\x80-\xbf\u0152-\u2122]")  # UTF-8 read as Windows-1252: Ð\u0178, Ã©, â€


def mail(*head: str, body: bytes = b"") -> bytes:
    """A mail with these header lines (From first unless given), a blank line and the body bytes."""
    fields = head if any(h.lower().startswith("from:") for h in head) else ("From: a@customer.test", *head)
    return "\r\n".join(fields).encode("ascii") + b"\r\n\r\n" + body


def raw_mail(*head: bytes, body: bytes = b"body\r\n") -> bytes:
    """A mail whose header lines are given as bytes: raw 8-bit fields, as some clients write them."""
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def parse(raw: bytes) -> InboundMessage:
    started = time.monotonic()
    message = parse_message(raw, IMPORTED)
    assert time.monotonic() - started < 2
    return message


def plain(charset: str, body: bytes, *head: str) -> bytes:
    return mail(f"Content-Type: text/plain; charset={charset}", *head, body=body)


# One invalid byte in a UTF-8 part costs that byte only.

def test_one_bad_byte_in_a_utf8_part_costs_only_that_byte() -> None:
    body = "Профиль обновлён: ".encode() + b"\xff" + " спасибо!".encode()
    parsed = parse(plain("utf-8", body))
    assert parsed.text == "Профиль обновлён: \ufffd спасибо!"
    assert "CharsetDecodeDefect" in parsed.defects
    assert not MOJIBAKE.search(parsed.text)


def test_a_part_that_is_no_utf8_at_all_is_not_replaced_wholesale() -> None:
    """Mostly not UTF-8 (Windows-1252 under a UTF-8 label): the label is wrong, not a byte."""
    body = "Grüße aus Köln, die Lieferung für Müller ist angekommen.".encode("cp1252")
    parsed = parse(plain("utf-8", body))
    assert parsed.text == "Grüße aus Köln, die Lieferung für Müller ist angekommen."


# HTML-only mail: Unicode kept, plain text rather than Markdown.

def html_mail(html: str) -> bytes:
    return mail("Content-Type: text/html; charset=utf-8", body=html.encode())


def test_html_only_mail_keeps_its_accents() -> None:
    parsed = parse(html_mail("<p>Herr M&uuml;ller schreibt: Gr&#252;&szlig;e &amp; &euro; 5 &mdash; Zoë</p>"))
    assert parsed.text == "Herr Müller schreibt: Grüße & € 5 — Zoë"


ORDER_HTML = """<html><head><style>p {color: red}</style><title>Order</title></head><body>
<h1>Order <b>#4471</b></h1>
<p>Dear <em>Ms Smith</em>, your order is <strong>ready</strong>: 1. pick it up, 2. pay.</p>
<table><tr><th>Item</th><th>Qty</th></tr><tr><td>Widget</td><td>2</td></tr><tr><td>Gadget</td><td>10</td></tr></table>
<p>Track it <a href="https://shop.test/o/4471">here</a>, see <a href="https://shop.test/">https://shop.test/</a>
or write to <a href="mailto:help@shop.test">help@shop.test</a>
or <a href="mailto:help@shop.test?subject=4471">us</a>.</p>
<ul><li>fast</li><li>safe</li></ul><img src="cid:logo" alt="Logo"><script>track()</script></body></html>"""


def test_html_becomes_plain_text_not_markdown() -> None:
    text = parse(html_mail(ORDER_HTML)).text
    for markdown in ("**", "__", "_Ms", "#4471**", "# Order", "---", "|", "[", "](", "\\", "![", "Logo"):
        assert markdown not in text, (markdown, text)
    assert text.splitlines()[0] == "Order #4471"
    assert "Dear Ms Smith, your order is ready: 1. pick it up, 2. pay." in text
    assert re.search(r"^Item +Qty$", text, re.MULTILINE) and re.search(r"^Gadget +10$", text, re.MULTILINE)
    assert "Track it here (https://shop.test/o/4471), see https://shop.test/" in text
    assert "or write to help@shop.test or us (help@shop.test)." in text
    assert "* fast" in text and "track()" not in text and "color" not in text


def test_html_deeper_than_the_parser_reads_still_gives_its_text() -> None:
    parsed = parse(html_mail("<font>" * 300 + "M&uuml;ller, deep down"))
    assert parsed.text == "Müller, deep down"
    assert "HtmlTooDeepDefect" in parsed.defects


# Raw 8-bit header fields: UTF-8 when valid, else the message's charset, else detected.

def test_raw_utf8_header_fields_are_utf8() -> None:
    parsed = parse(raw_mail("From: Jürgen Müller <j@customer.test>".encode(), "Subject: Überweisung für März".encode()))
    assert (parsed.subject, parsed.sender.name) == ("Überweisung für März", "Jürgen Müller")


def test_raw_gb2312_header_fields_are_read_in_the_charset_the_body_declares() -> None:
    parsed = parse(raw_mail("From: 王伟 <wang@customer.test>".encode("gb2312"), "Subject: 打印机坏了".encode("gb2312"),
                            b"Content-Type: text/plain; charset=gb2312", body="请帮忙".encode("gb2312")))
    assert (parsed.subject, parsed.sender.name, parsed.text) == ("打印机坏了", "王伟", "请帮忙")


def test_raw_shift_jis_subject_without_any_charset_is_detected() -> None:
    parsed = parse(raw_mail(b"From: tanaka@customer.test", "Subject: プリンターが壊れました".encode("shift_jis")))
    assert parsed.subject == "プリンターが壊れました"


def test_raw_header_fields_in_a_western_charset_stay_western() -> None:
    """A pound sign or two umlauts are too little for a detector: the charset mail is most in wins."""
    parsed = parse(raw_mail(b"From: x@customer.test", "Subject: Houses rise £1,100 – Grüße".encode("cp1252")))
    assert parsed.subject == "Houses rise £1,100 – Grüße"


def test_a_raw_8bit_attachment_name_is_read_like_the_other_fields() -> None:
    raw = raw_mail(b"From: a@customer.test", b'Content-Type: multipart/mixed; boundary="b"', body=(
        b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nAnbei die Liste.\r\n--b\r\n"
        b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"Gr\xfc\xdfe.txt\"\r\n\r\nx\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\""
        + "Prüfbericht.pdf".encode() + b"\"\r\n\r\n%PDF\r\n--b--\r\n"))
    assert [a.filename for a in parse(raw).attachments] == ["Grüße.txt", "Prüfbericht.pdf"]


# Labels too narrow for what they hold: the extended codec of the label's family.

NEC_TEXT = "①納品書②請求書 ㈱サンプル Ⅲ号館"


def jis(text: str) -> bytes:
    """ISO-2022-JP as Outlook writes it: cp932's rows (NEC and IBM) in JIS X 0208 form."""
    pairs = bytearray(b"\x1b$B")
    for char in text:
        if char == " ":
            pairs += b"\x1b(B \x1b$B"
            continue
        lead, trail = char.encode("cp932")
        row_offset = 0x70 if lead < 0xA0 else 0xB0
        if trail < 0x9F:
            first, second = ((lead - row_offset) << 1) - 1, trail - (0x1F if trail < 0x80 else 0x20)
        else:
            first, second = (lead - row_offset) << 1, trail - 0x7E
        pairs += bytes((first, second))
    return bytes(pairs + b"\x1b(B")


def test_iso_2022_jp_with_nec_and_ibm_rows_is_read_through_cp932() -> None:
    parsed = parse(plain("iso-2022-jp", jis(NEC_TEXT) + b"\r\n", "Content-Transfer-Encoding: 7bit"))
    assert parsed.text == NEC_TEXT
    assert "\x1b" not in parsed.text


def test_iso_2022_jp_with_half_width_katakana() -> None:
    body = b"\x1b$BCmJ8\x1b(I6@6E\x1b(B OK"  # 注文 (JIS X 0208), then カタカナ half-width (JIS X 0201)
    assert parse(plain("iso-2022-jp", body, "Content-Transfer-Encoding: 7bit")).text == "注文ｶﾀｶﾅ OK"


def test_shift_jis_labelled_iso_2022_jp_is_read_as_shift_jis() -> None:
    text = "お世話になっております。請求書について①"
    parsed = parse(plain("iso-2022-jp", text.encode("cp932"), "Content-Transfer-Encoding: 8bit"))
    assert parsed.text == text


def test_iso_2022_jp_subject_with_nec_rows() -> None:
    word = base64.b64encode(jis("①㈱サンプル")).decode()
    assert parse(mail(f"Subject: =?ISO-2022-JP?B?{word}?=")).subject == "①㈱サンプル"


def test_windows_1250_under_an_iso_8859_2_label_shows_no_c1_controls() -> None:
    text = "Šťastný žluťoučký kůň – „Dobrý den“"
    parsed = parse(plain("iso-8859-2", text.encode("cp1250"), "Content-Transfer-Encoding: 8bit"))
    assert parsed.text == text


def test_windows_1252_under_a_latin_1_label_in_a_subject_and_body() -> None:
    parsed = parse(plain("iso-8859-1", "“Prix” 30 € – déjà".encode("cp1252"),
                         "Subject: =?iso-8859-1?q?=93Devis=94_=80_30?=", "Content-Transfer-Encoding: 8bit"))
    assert (parsed.subject, parsed.text) == ("“Devis” € 30", "“Prix” 30 € – déjà")


def test_utf8_under_a_latin_1_label_is_utf8() -> None:
    text = "Dash — and “quotes” in UTF-8"
    assert parse(plain("iso-8859-1", text.encode(), "Content-Transfer-Encoding: 8bit")).text == text


def test_latin_1_text_without_c1_bytes_keeps_its_label() -> None:
    assert parse(plain("iso-8859-1", "Grüße, ¿qué tal?".encode("latin-1"))).text == "Grüße, ¿qué tal?"


# No label, or one the bytes prove wrong: charset-normalizer.

RUSSIAN = "Здравствуйте! Принтер в офисе не работает, пришлите, пожалуйста, техника. Спасибо, Иван"


def test_cyrillic_under_a_us_ascii_label_is_detected() -> None:
    parsed = parse(plain("us-ascii", RUSSIAN.encode("koi8_r")))
    assert parsed.text == RUSSIAN
    assert "CharsetDecodeDefect" in parsed.defects


def test_unlabelled_8bit_bodies_are_detected() -> None:
    for charset, text in (("cp1251", RUSSIAN), ("gb18030", "您好，办公室的打印机坏了，请派技术人员来修理。谢谢！"),
                          ("cp932", "お世話になっております。事務所のプリンターが故障しました。"),
                          ("cp1252", "Bonjour, la facture n° 4471 n’est pas arrivée. Merci, Hélène")):
        parsed = parse(mail("Content-Transfer-Encoding: 8bit", body=text.encode(charset)))
        assert parsed.text == text, charset


def test_detection_runs_only_when_needed() -> None:
    """UTF-8 and correctly labelled mail never reaches the detector: parsing stays fast."""
    raw = plain("utf-8", ("Grüße, " * 2000).encode())
    started = time.perf_counter()
    for _ in range(50):
        parse_message(raw, IMPORTED)
    assert (time.perf_counter() - started) / 50 < 0.05


# A sender with a quoted local part is a sender, not a quarantined mail.

QUOTED = '"john doe"@customer.test'


def test_a_quoted_local_part_is_kept_as_written_and_lower_cased() -> None:
    assert normalize_address('"John Doe"@Customer.TEST') == QUOTED
    parsed = parse(mail('From: "John Doe"@Customer.TEST', "Subject: hello"))
    assert parsed.sender.email == QUOTED
    parsed = parse(mail('From: John <"John Doe"@customer.test>', 'Cc: "a b"@customer.test'))
    assert (parsed.sender.email, parsed.sender.name, [a.email for a in parsed.cc]) == (
        QUOTED, "John", ['"a b"@customer.test'])


@pytest.mark.sqlite_only
def test_mail_from_a_quoted_local_part_is_filed_and_answered_over_smtp(database: Database, settings: Settings,
                                                                      config_path: Path, sink: Sink) -> None:
    raw = mail(f"From: John Doe <{QUOTED}>", "To: support@example.com", "Subject: Printer on fire",
               "Message-ID: <quoted-1@customer.test>", body=b"Help, please.\r\n")
    delivered = run_in_process(config_path, "deliver", "--from", QUOTED, "--to", "support@example.com", stdin=raw)
    assert delivered.returncode == 0, delivered.stderr.decode()
    (ticket,) = json_in_process(config_path, "tickets")
    assert ticket["subject"] == "Printer on fire"
    assert not json_in_process(config_path, "quarantine", "list")
    OutboxSender(database, settings.relay, settings.smtp.hostname).send_due()
    assert [rcpts for _, rcpts, _ in sink.received] == [[QUOTED]]  # the acknowledgement, RCPT TO:<"john doe"@…>
