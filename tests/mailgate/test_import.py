"""`postdesk import` through the real CLI: mbox, Maildir and folders in, tickets out, nothing twice."""

from __future__ import annotations

import pytest

import io
import json
import mailbox
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mailgate.mail_sources import split_mbox
from testkit import json_in_process, make_mail, run_in_process, write_config

SUMMARY = re.compile(r"read (\d+): filed (\d+), duplicates (\d+), quarantined (\d+), too large (\d+), "
                     r"left for retry (\d+)")


def conversation() -> list[EmailMessage]:
    """Four mails: a question, its answer, a reply to the answer, and an unrelated one."""
    first = make_mail(subject="Printer on fire", body="Help, please.")
    answer = make_mail(subject="Re: Printer on fire", body="Unplug it.", sender="Alice <alice@customer.test>",
                       in_reply_to=first["Message-ID"])
    again = make_mail(subject="Re: Printer on fire", body="Done, thanks.", in_reply_to=answer["Message-ID"],
                      references=f'{first["Message-ID"]} {answer["Message-ID"]}')
    other = make_mail(subject="Invoice missing", body="Where is it?", sender="Bob <bob@other-customer.test>")
    return [first, answer, again, other]


def import_path(config: Path, path: Path) -> dict[str, int]:
    result = run_in_process(config, "import", str(path))
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    match = SUMMARY.search(result.stdout.decode())
    assert match, result.stdout.decode()
    keys = ("read", "filed", "duplicates", "quarantined", "too_large", "left_for_retry")
    return dict(zip(keys, map(int, match.groups())))


def tickets(config: Path) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json_in_process(config, "tickets", "--status", "all")
    return listed


def message_counts(config: Path) -> dict[str, int]:
    return {t["subject"]: json_in_process(config, "show", t["mask"])["message_count"] for t in tickets(config)}


def write_mbox(path: Path, mails: list[EmailMessage]) -> Path:
    box = mailbox.mbox(str(path))
    for mail in mails:
        box.add(mail)
    box.close()
    return path


def test_mbox_becomes_threaded_tickets(config_path: Path, tmp_path: Path) -> None:
    source = write_mbox(tmp_path / "support.mbox", conversation())
    report = import_path(config_path, source)
    assert report == {"read": 4, "filed": 4, "duplicates": 0, "quarantined": 0, "too_large": 0,
                      "left_for_retry": 0}
    assert message_counts(config_path) == {"Printer on fire": 3, "Invoice missing": 1}


@pytest.mark.sqlite_only
def test_maildir_is_imported(config_path: Path, tmp_path: Path) -> None:
    box = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    for mail in conversation():
        box.add(mailbox.MaildirMessage(mail.as_bytes()))
    report = import_path(config_path, tmp_path / "Maildir")
    assert (report["read"], report["filed"]) == (4, 4)
    assert message_counts(config_path) == {"Printer on fire": 3, "Invoice missing": 1}


@pytest.mark.sqlite_only
def test_folder_of_files_with_subfolders_and_a_stray_file(config_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "exported"
    (folder / "2026" / "11").mkdir(parents=True)
    for number, mail in enumerate(conversation()):
        (folder / "2026" / "11" / f"{number}.eml").write_bytes(mail.as_bytes())
    (folder / "README.txt").write_text("These are the mails we exported last week.\n")
    report = import_path(config_path, folder)
    assert (report["read"], report["filed"], report["quarantined"]) == (5, 4, 1)
    assert message_counts(config_path) == {"Printer on fire": 3, "Invoice missing": 1}
    (held,) = json_in_process(config_path, "quarantine", "list")
    assert held["source"] == "import" and "no header fields" in held["reason"]


def test_importing_the_same_mbox_twice_stores_nothing_twice(config_path: Path, tmp_path: Path) -> None:
    source = write_mbox(tmp_path / "support.mbox", conversation())
    import_path(config_path, source)
    again = import_path(config_path, source)
    assert (again["read"], again["filed"], again["duplicates"]) == (4, 0, 4)
    assert message_counts(config_path) == {"Printer on fire": 3, "Invoice missing": 1}


@pytest.mark.sqlite_only
def test_missing_path_is_one_readable_error(config_path: Path, tmp_path: Path) -> None:
    result = run_in_process(config_path, "import", str(tmp_path / "no-such.mbox"))
    assert result.returncode == 2
    assert b"Traceback" not in result.stderr
    assert b"does not exist" in result.stderr


def test_oversize_message_is_reported_not_stored(db_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, db_url, max_message_size="4000")
    mails = conversation()
    mails.insert(1, make_mail(subject="Huge", body="x" * 10_000))
    source = write_mbox(tmp_path / "support.mbox", mails)
    result = run_in_process(config, "import", str(source))
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert "too large 1" in result.stdout.decode()
    assert re.search(r"not imported, \d+ bytes is over .*max_message_size \(4000\): .*support\.mbox#2",
                     result.stderr.decode())
    assert "Huge" not in {t["subject"] for t in tickets(config)}
    assert len(tickets(config)) == 2


@pytest.mark.sqlite_only
def test_mbox_body_lines_starting_with_from_stay_in_their_message(config_path: Path, tmp_path: Path) -> None:
    """mboxo writers leave `From ` in bodies unquoted; mboxrd quotes it as `>From `."""
    raw = ("From alice@customer.test Fri Nov 20 09:30:00 2026\n"
           "From: Alice <alice@customer.test>\nSubject: Film\nMessage-ID: <film@customer.test>\n\n"
           "My favourite:\n\nFrom Russia with love\n\n>From the archive\n\n"
           "From bob@customer.test Fri Nov 20 09:31:00 2026\n"
           "From: Bob <bob@customer.test>\nSubject: Other\nMessage-ID: <other@customer.test>\n\nHi\n")
    source = tmp_path / "mboxo"
    source.write_bytes(b"\xef\xbb\xbf" + raw.encode())
    assert import_path(config_path, source)["filed"] == 2
    (film,) = [t for t in tickets(config_path) if t["subject"] == "Film"]
    text = json_in_process(config_path, "show", film["mask"])["messages"][0]["text"]
    assert "From Russia with love" in text and "\nFrom the archive" in text


def test_split_mbox_keeps_every_byte_of_every_message() -> None:
    messages = [b"From: a@x.test\nSubject: one\n\nbody one\n", b"From: b@x.test\r\nSubject: two\r\n\r\nbody\r\n"]
    data = b"".join(b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n" + m + b"\n" for m in messages)
    assert list(split_mbox(io.BytesIO(data))) == messages


@pytest.mark.sqlite_only
def test_quarantine_list_names_each_reason(config_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "empty.eml").write_bytes(b"")
    (folder / "nobody.eml").write_bytes(b"Subject: no sender\n\nwho wrote this?\n")
    assert import_path(config_path, folder)["quarantined"] == 2
    reasons = sorted(item["reason"] for item in json.loads(
        run_in_process(config_path, "quarantine", "list", "--json").stdout))
    assert reasons == ["unparseable: empty message",
                       "unparseable: no sender address in From, Sender, Reply-To or the envelope"]
