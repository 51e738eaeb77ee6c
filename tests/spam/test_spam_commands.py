"""`postdesk spam ...` and `notspam` as whole processes; the threshold holds spam without telling anyone;
a running daemon scores with what another process has just trained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import OutboxItem, SpamTraining, Status, Ticket
from core.settings import Settings, load_settings
from core.staff import add_worker
from mailgate.deliver import deliver
from spam.statistics import token_counts, totals
from testkit import ROOT, Daemon, cli_json, make_mail, run_cli, wait_for

SPAMMY = "Cheap vi4gra and s0ftware, click http://pills.example.biz/buy now, winner cash prize guaranteed"
HAMMY = "The invoice for the printer repair is attached; could you confirm the delivery address for Monday?"


def mail_folders(tmp_path: Path, count: int = 4) -> tuple[Path, Path]:
    """A folder of spam files and an mbox of not-spam: the two kinds of source `spam train` reads."""
    spam_dir = tmp_path / "spam"
    spam_dir.mkdir()
    for n in range(count):
        (spam_dir / f"{n}.eml").write_bytes(make_mail(subject=f"WINNER offer {n}", body=f"{SPAMMY} {n}",
                                                      sender="promo@pills.example.biz").as_bytes())
    ham_mbox = tmp_path / "ham.mbox"
    ham_mbox.write_bytes(b"".join(b"From alice@customer.test Fri Nov 20 09:30:00 2026\n"
                                  + make_mail(subject=f"Printer invoice {n}", body=f"{HAMMY} {n}").as_bytes()
                                  .replace(b"\r\n", b"\n") + b"\n" for n in range(count)))
    return spam_dir, ham_mbox


def with_spam_settings(config_path: Path, **values: object) -> Path:
    text = config_path.read_text() + "\n[spam]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    config_path.write_text(text)
    return config_path


def file_mail(database: Database, settings: Settings, subject: str, body: str,
              sender: str = "Alice <alice@customer.test>") -> Ticket:
    deliver(database, settings, make_mail(subject=subject, body=body, sender=sender).as_bytes(),
            Envelope("deliver", "", ("support@example.com",)))
    with database.read() as session:
        return session.scalars(select(Ticket).order_by(Ticket.id.desc())).first()


def test_train_score_and_stats(config_path: Path, tmp_path: Path) -> None:
    with_spam_settings(config_path, min_training=3)
    spam_dir, ham_mbox = mail_folders(tmp_path)
    result = run_cli(config_path, "spam", "train", "--spam", str(spam_dir), "--ham", str(ham_mbox))
    assert result.returncode == 0, result.stderr.decode()
    assert "trained 4 as spam" in result.stdout.decode() and "trained 4 as not_spam" in result.stdout.decode()
    assert cli_json(config_path, "spam", "stats")["spam_messages"] == 4
    probe = tmp_path / "probe.eml"
    probe.write_bytes(make_mail(subject="WINNER", body=SPAMMY, sender="promo@pills.example.biz").as_bytes())
    scored = cli_json(config_path, "spam", "score", str(probe))
    assert set(scored) == {"file", "score", "spam", "interesting_words"} and 0.9 < scored["score"] <= 0.9999
    assert scored["file"] == str(probe) and scored["spam"] is True  # above the shipped threshold, 0.9
    assert {"word", "probability"} == set(scored["interesting_words"][0])


def test_two_processes_training_one_database_add_up(config_path: Path, tmp_path: Path, database: Database) -> None:
    spam_dir, ham_mbox = mail_folders(tmp_path, count=30)
    command = [sys.executable, "-m", "workers", "--config", str(config_path), "spam", "train",
               "--spam", str(spam_dir), "--ham", str(ham_mbox)]
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    assert [run.wait(120) for run in runs] == [0, 0], [run.stderr.read() for run in runs]  # type: ignore[union-attr]
    with database.read() as session:
        assert (totals(session).spam, totals(session).ham) == (60, 60)
        assert token_counts(session, {"vi4gra"})["vi4gra"].spam == 60
        assert token_counts(session, {"printer"})["printer"].ham == 60


def test_threshold_holds_a_spammy_new_ticket_without_telling_anyone(config_path: Path, tmp_path: Path,
                                                                      database: Database) -> None:
    settings = load_settings(with_spam_settings(config_path, min_training=3, threshold=0.9))
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_worker(session, "jane@corp.test", "Jane Doe", ["Support"])
    spam_dir, ham_mbox = mail_folders(tmp_path)
    assert run_cli(config_path, "spam", "train", "--spam", str(spam_dir), "--ham", str(ham_mbox)).returncode == 0
    spammy = file_mail(database, settings, "WINNER cash", SPAMMY, sender="promo@pills.example.biz")
    hammy = file_mail(database, settings, "Printer invoice", HAMMY)
    assert spammy.status is Status.SPAM and spammy.spam_score > 0.9, (spammy.spam_score, spammy.interesting_words)
    assert hammy.status is Status.OPEN and hammy.spam_score < 0.1
    with database.read() as session:
        told = {item.ticket_id for item in session.scalars(select(OutboxItem))}
    assert spammy.id not in told and hammy.id in told
    shown = cli_json(config_path, "show", spammy.mask)
    assert shown["spam_score"] == spammy.spam_score and shown["spam_training"] == "none"
    shown_words = {w["word"] for w in shown["interesting_words"]}
    assert len(shown_words) == 15 and {"cash", "cheap", "click"} <= shown_words  # the 15 strongest are kept


def test_spam_and_notspam_mark_a_ticket_and_a_reply_trains_not_spam(config_path: Path, database: Database,
                                                                     settings: Settings) -> None:
    ticket = file_mail(database, settings, "Printer invoice", HAMMY)
    marked = run_cli(config_path, "spam", ticket.mask)
    assert marked.returncode == 0, marked.stderr.decode()
    assert _state(database, ticket.mask) == (Status.DELETED, SpamTraining.SPAM, 1, 0)
    assert run_cli(config_path, "notspam", ticket.mask).returncode == 0
    assert _state(database, ticket.mask) == (Status.OPEN, SpamTraining.NOT_SPAM, 0, 1)
    assert run_cli(config_path, "notspam", ticket.mask).returncode == 0  # again: nothing counted twice
    assert _state(database, ticket.mask)[2:] == (0, 1)
    assert run_cli(config_path, "spam", "ZZZ-00000-000").returncode == 1

    other = file_mail(database, settings, "Second printer", HAMMY)
    with database.write() as session:
        add_worker(session, "jane@corp.test", "Jane Doe", ["Support"])
    reply = run_cli(config_path, "reply", other.mask, "--as", "jane@corp.test", stdin=b"We will come on Monday.\n")
    assert reply.returncode == 0, reply.stderr.decode()
    assert _state(database, other.mask)[1:] == (SpamTraining.NOT_SPAM, 0, 2)


def _state(database: Database, mask: str) -> tuple[Status, SpamTraining, int, int]:
    with database.read() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).one()
        trained = totals(session)
        return ticket.status, ticket.spam_training, trained.spam, trained.ham


def test_a_running_daemon_scores_with_what_another_process_just_trained(config_path: Path, tmp_path: Path,
                                                                        database: Database) -> None:
    """Two verdicts swap classes (the totals stay as they were): only the training generation tells the change."""
    settings = load_settings(with_spam_settings(config_path, min_training=3, threshold=1))
    spam_dir, ham_mbox = mail_folders(tmp_path)
    assert run_cli(config_path, "spam", "train", "--spam", str(spam_dir), "--ham", str(ham_mbox)).returncode == 0
    offer = ("Printer offer", f"{HAMMY} limited offer winner")
    offered, other = file_mail(database, settings, *offer), file_mail(database, settings, "WINNER cash", SPAMMY)
    for verdict, mask in (("notspam", offered.mask), ("spam", other.mask)):
        assert run_cli(config_path, verdict, mask).returncode == 0
    daemon = Daemon(config_path, tmp_path / "daemon.log").start()
    try:
        before = _scored_by(daemon, database, *offer)
        for verdict, mask in (("spam", offered.mask), ("notspam", other.mask)):
            assert run_cli(config_path, verdict, mask).returncode == 0
        after = _scored_by(daemon, database, *offer)
    finally:
        daemon.stop()
    assert after > before


def _scored_by(daemon: Daemon, database: Database, subject: str, body: str) -> float:
    """Send a new mail to the daemon and wait for the score of the ticket it opens."""
    with database.read() as session:
        known = set(session.scalars(select(Ticket.id)))
    daemon.send(make_mail(subject=subject, body=body).as_bytes())

    def scored() -> float | None:
        with database.read() as session:
            new = session.scalars(select(Ticket).where(Ticket.id.not_in(known))).first()
            return new.spam_score if new is not None and new.spam_score is not None else None
    return wait_for(scored)  # type: ignore[return-value]


def test_spam_on_a_ticket_a_worker_opened_deletes_it_and_says_there_is_nothing_to_learn(
        config_path: Path, database: Database) -> None:
    assert run_cli(config_path, "worker", "add", "jane@corp.test", "--name", "Jane Doe").returncode == 0
    opened = run_cli(config_path, "new", "--to", "alice@customer.test", "--subject", "Your refund",
                     "--as", "jane@corp.test", stdin=b"Your refund is on its way.\n")
    assert opened.returncode == 0, opened.stderr.decode()
    mask = opened.stdout.decode().strip()
    marked = run_cli(config_path, "spam", mask)
    assert marked.returncode == 0, marked.stderr.decode()
    assert "no customer mail to learn from" in marked.stdout.decode()
    assert _state(database, mask) == (Status.DELETED, SpamTraining.NONE, 0, 0)
    restored = run_cli(config_path, "notspam", mask)
    assert "no customer mail to learn from" in restored.stdout.decode()
    assert _state(database, mask) == (Status.OPEN, SpamTraining.NONE, 0, 0)
