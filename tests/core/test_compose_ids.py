"""Message-ID fields go out folded between ids, never as encoded words (issue 11, item 8)."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.policy import SMTP, default

from core.compose import Outgoing, Rendered, mailbox

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
OUTLOOK_ID = "<DM6PR12MB45143E2F1A0B9C8D7E6F5A4B3C2D1E0F9A8B7C6D5E4F@DM6PR12MB4514.namprd12.prod.outlook.com>"
OUR_OWN_ID = f"<{hashlib.sha256(b'a mail without an id').hexdigest()}@no-message-id.postdesk.invalid>"


def build(in_reply_to: str | None, references: list[str]) -> bytes:
    mail = Outgoing(sender=mailbox("support@example.com", "Support"), to=[mailbox("alice@customer.test")],
                    subject="Re: Printer on fire", body=Rendered("We are on it.\n", "<p>We are on it.</p>\n"), in_reply_to=in_reply_to,
                    references=references).build("postdesk.test", NOW)
    return mail.as_bytes(policy=SMTP)


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_long_ids_are_written_verbatim_and_read_back_equal() -> None:
    assert len(OUTLOOK_ID) == 95
    references = [f"<{n:02d}-" + "r" * 80 + "@lists.customer.test>" for n in range(19)] + [OUTLOOK_ID]
    raw = build(OUTLOOK_ID, [OUR_OWN_ID, *references])
    head = header_block(raw)
    assert b"=?" not in head, "no encoded word in the header"
    for message_id in [OUTLOOK_ID, *references]:
        assert b" " + message_id.encode() + b"\r\n" in head, f"{message_id} is on a line of its own making"
    parsed = message_from_bytes(raw, policy=default)
    assert str(parsed["In-Reply-To"]) == OUTLOOK_ID
    assert re.findall(r"<[^<>\s]+>", str(parsed["References"])) == references  # the last 20
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_short_ids_share_a_line_up_to_78_characters() -> None:
    short = [f"<{n}@customer.test>" for n in range(10)]
    head = header_block(build(short[-1], short)).decode()
    (folded,) = re.findall(r"^References:[^\r\n]*(?:\r\n [^\r\n]*)*", head, re.M)
    assert [len(line) <= 78 for line in folded.split("\r\n")] == [True] * 3
    assert re.findall(r"<[^<>\s]+>", "".join(folded)) == short


def test_postdesk_made_ids_and_our_own_message_id_are_never_encoded() -> None:
    raw = build(OUR_OWN_ID, [OUR_OWN_ID])
    parsed = message_from_bytes(raw, policy=default)
    assert b"=?" not in header_block(raw)
    assert str(parsed["In-Reply-To"]) == str(parsed["References"]) == OUR_OWN_ID
    assert re.fullmatch(r"<[\w-]+\.pd@postdesk\.test>", str(parsed["Message-ID"]))


def test_an_id_that_cannot_go_out_as_it_is_is_left_out() -> None:
    raw = build("<caf\u00e9@customer.test>", ["<caf\u00e9@customer.test>", "<ok@customer.test>"])
    parsed = message_from_bytes(raw, policy=default)
    assert parsed["In-Reply-To"] is None
    assert str(parsed["References"]) == "<ok@customer.test>"
