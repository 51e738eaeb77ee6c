"""Which `From ` lines split an mbox, and that a message file is never split (issue 11, item 5)."""

from __future__ import annotations

import io
import mailbox
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from mailgate.mail_sources import is_separator, read_messages, split_mbox
from testkit import json_in_process, run_in_process

PATCH = (b"From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001\n"
         b"From: Alice <alice@customer.test>\n"
         b"Subject: [PATCH] printer: stop the fire\n\n"
         b"---\n printer.c | 2 +-\n\n"
         b"diff --git a/printer.c b/printer.c\n--- a/printer.c\n+++ b/printer.c\n"
         b"@@ -1 +1 @@\n-burn();\n+cool();\n")


def message_with_a_patch(number: int = 1) -> bytes:
    """A one-file message, as a client saves it: an mbox `From ` line, then a patch attached as text."""
    return (b"From alice@customer.test Mon Nov 30 10:00:00 2026\n"
            b"From: Alice <alice@customer.test>\nTo: support@example.com\n"
            b"Subject: Patch for the printer %d\nMessage-ID: <patch-%d@customer.test>\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n"
            b"--b\nContent-Type: text/plain\n\nThe fix is attached.\n"
            b"--b\nContent-Type: text/x-patch\nContent-Disposition: attachment; filename=\"0001-fix.patch\"\n\n"
            % (number, number) + PATCH + b"\n--b--\n")


def attachment_of(raw: bytes) -> bytes:
    mail = message_from_bytes(raw, policy=default)
    assert isinstance(mail, EmailMessage)
    (part,) = mail.iter_attachments()
    return bytes(part.get_payload(decode=True))


def test_a_message_file_in_a_folder_is_one_message(tmp_path: Path) -> None:
    (tmp_path / "mails").mkdir()
    (tmp_path / "mails" / "patch.eml").write_bytes(message_with_a_patch())
    (message,) = read_messages(tmp_path / "mails")
    assert message.raw == message_with_a_patch()
    assert attachment_of(message.raw).startswith(PATCH.rstrip(b"\n"))


def test_a_maildir_message_is_one_message(tmp_path: Path) -> None:
    box = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    box.add(message_with_a_patch())
    (message,) = read_messages(tmp_path / "Maildir")
    assert message.raw == message_with_a_patch()


def test_an_mbox_named_on_its_own_keeps_each_attached_patch_whole(tmp_path: Path) -> None:
    """Python's mbox writer quotes the patch's `From ` line; reading it back unquotes it."""
    box = mailbox.mbox(str(tmp_path / "patches.mbox"))
    for number in (1, 2):
        box.add(mailbox.mboxMessage(message_with_a_patch(number).split(b"\n", 1)[1]))
    box.close()
    messages = list(read_messages(tmp_path / "patches.mbox"))
    assert [m.origin.rsplit("#", 1)[1] for m in messages] == ["1", "2"]
    for message in messages:
        assert attachment_of(message.raw).startswith(PATCH.rstrip(b"\n"))


def test_a_separator_needs_a_blank_line_before_it() -> None:
    mbox = (b"From alice@customer.test Mon Nov 30 10:00:00 2026\nFrom: alice@customer.test\nSubject: one\n\n"
            b"text\nFrom bob@customer.test Mon Nov 30 10:01:00 2026\nFrom: bob@customer.test\n\n"
            b"From carol@customer.test Mon Nov 30 10:02:00 2026\nFrom: carol@customer.test\nSubject: two\n\nhi\n")
    first, second = split_mbox(io.BytesIO(mbox))
    assert b"text\nFrom bob@customer.test Mon Nov 30 10:01:00 2026\nFrom: bob@customer.test\n" in first
    assert second == b"From: carol@customer.test\nSubject: two\n\nhi\n"


def test_a_content_length_may_stand_for_the_blank_line() -> None:
    """Netscape wrote no blank line before `From - `; its Content-Length says where a body ends."""
    first = b"From: alice@customer.test\nContent-Length: 12\n\nhello there\n"
    second = b"From: bob@customer.test\nSubject: two\n\nhi\n"
    mbox = b"From - Mon Jun  3 12:50:27 1996\n" + first + b"From - Mon Jun  3 12:51:00 1996\n" + second
    assert list(split_mbox(io.BytesIO(mbox))) == [first, second]
    wrong_length = mbox.replace(b"Content-Length: 12", b"Content-Length: 400")
    (merged,) = split_mbox(io.BytesIO(wrong_length))
    assert merged.endswith(b"hello there\nFrom - Mon Jun  3 12:51:00 1996\n" + second)


@pytest.mark.parametrize("line, separates", [
    (b"From alice@example.com Mon Nov 30 10:00:00 2026\n", True),
    (b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\r\n", True),
    (b"From - Sun 24 Jan 2016 21:57:32\n", True),  # Thunderbird
    (b"From 1844347792267117879@xxx Wed Sep 27 14:47:17 +0000 2023\n", True),  # Gmail's export
    (b"From - \n", True),  # old Netscape: no date at all
    (b"From Russia with love\n", False),
    (b"From alice@example.com wrote on Monday:\n", False),
    (b"From: alice@example.com\n", False),
    (b"From \n", True),  # a writer that knew no sender
    (b">From alice@example.com Mon Nov 30 10:00:00 2026\n", False),
])
def test_the_shape_of_a_separator_line(line: bytes, separates: bool) -> None:
    assert is_separator(line) is separates


def test_mboxrd_quoting_comes_off_one_level() -> None:
    body = b">From here\n>>From there\n>>>From afar\n>Fromage\n> From a quote\n>From\n"
    mbox = b"From alice@customer.test Mon Nov 30 10:00:00 2026\nFrom: alice@customer.test\n\n" + body
    (message,) = split_mbox(io.BytesIO(mbox))
    assert message == (b"From: alice@customer.test\n\n"
                       b"From here\n>From there\n>>From afar\n>Fromage\n> From a quote\n>From\n")


def test_a_message_file_that_begins_with_from_is_not_mboxrd_unquoted(tmp_path: Path) -> None:
    raw = message_with_a_patch().replace(b"The fix is attached.", b">From the printer's log: fire")
    (tmp_path / "mails").mkdir()
    (tmp_path / "mails" / "quoted.eml").write_bytes(raw)
    (message,) = read_messages(tmp_path / "mails")
    assert message.raw == raw


@pytest.mark.sqlite_only
def test_importing_a_folder_files_the_patch_mail_as_one_ticket_with_its_attachment(config_path: Path,
                                                                                  tmp_path: Path) -> None:
    (tmp_path / "mails").mkdir()
    (tmp_path / "mails" / "patch.eml").write_bytes(message_with_a_patch())
    result = run_in_process(config_path, "import", str(tmp_path / "mails"))
    assert result.returncode == 0, result.stderr.decode()
    assert "read 1: filed 1," in result.stdout.decode()
    (ticket,) = json_in_process(config_path, "tickets", "--status", "all")
    (message,) = json_in_process(config_path, "show", ticket["mask"])["messages"]
    (attached,) = message["attachments"]
    assert (attached["filename"], attached["size"]) == ("0001-fix.patch", len(attachment_of(message_with_a_patch())))
    assert attached["size"] >= len(PATCH) - 1


@pytest.mark.parametrize("mbox", [
    b"From a@b Mon Nov 30 10:00:00 2026\nFrom: a@b\nSubject: x\n\nbody\n\n",
    b"From a@b Mon Nov 30 10:00:00 2026\r\nFrom: a@b\r\n\r\nbody\r\n\r\n",
    b"From a@b Mon Nov 30 10:00:00 2026\nFrom: a@b\n\nno line end at the end",
    b"From a@b Mon Nov 30 10:00:00 2026\nFrom: a@b\n\nbody\n\r",
    b"From a@b Mon Nov 30 10:00:00 2026\n",
    b"From a@b Mon Nov 30 10:00:00 2026",
    b"From a@b Mon Nov 30 10:00:00 2026\nFrom: a@b\n\nFromage is cheese\n From the side\n",
    message_with_a_patch(),  # a `From 0123…` line in the body: split_mbox decides
    b"From a@b Mon Nov 30 10:00:00 2026\nFrom: a@b\n\n>From the top, quoted\n",  # unquoted by split_mbox
    b"From a@b Mon Nov 30 10:00:00 2026\nFrom: a@b\n\nx\n\nFrom c@d Mon Nov 30 11:00:00 2026\nFrom: c@d\n\ny\n",
])
def test_a_file_of_one_message_is_read_whole_as_split_mbox_reads_it(tmp_path: Path, mbox: bytes) -> None:
    """The fast path for a saved mail (one `From ` line on top) gives exactly what the line-by-line split does."""
    path = tmp_path / "saved.eml"
    path.write_bytes(mbox)
    expected = list(split_mbox(io.BytesIO(mbox)))
    assert [m.raw for m in read_messages(path)] == expected
    assert [m.origin for m in read_messages(path)] == [f"{path}#{n}" for n in range(1, len(expected) + 1)]
