"""Mail the filter judges spam is held for review, never deleted unseen: only a worker's verdict or the
retention removes it, `notspam` releases it as if it had just arrived, and `spam score` reads many mails at once.

Commands run in-process through click's runner; the filter is trained on a handful of mails."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from core.db import Database
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.models import AuditEntry, OutboxItem, SpamTraining, Status, Ticket, utcnow
from core.purge import Cutoffs, count_purgeable, run_purge
from core.settings import Settings, load_settings
from core.staff import add_worker
from mailgate.deliver import deliver
from spam.statistics import totals
from testkit import make_mail
from workers.cli import main

SPAMMY = "Cheap vi4gra and s0ftware, click http://pills.example.biz/buy now, winner cash prize guaranteed"
HAMMY = "The invoice for the printer repair is attached; could you confirm the delivery address for Monday?"
WORKER = "jane@corp.test"
PROMO = "Promo <promo@pills.example.biz>"  # spam comes from its own senders, not the customers' addresses


def cli(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--config", str(config), *args], prog_name="postdesk")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def ok(config: Path, *args: str) -> str:
    result = cli(config, *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture
def trained(config_path: Path, tmp_path: Path, database: Database) -> Settings:
    """A filter that has seen four spams and four hams, a worker in the default group, the shipped threshold."""
    config_path.write_text(config_path.read_text() + "\n[spam]\nmin_training = 3\n")
    settings = load_settings(config_path)
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
        add_worker(session, WORKER, "Jane Doe", ["Support"])
    spam_dir, ham_dir = tmp_path / "spam", tmp_path / "ham"
    for folder, subject, body, sender in ((spam_dir, "WINNER offer", SPAMMY, "promo@pills.example.biz"),
                                          (ham_dir, "Printer invoice", HAMMY, "alice@customer.test")):
        folder.mkdir()
        for n in range(4):
            (folder / f"{n}.eml").write_bytes(make_mail(subject=f"{subject} {n}", body=f"{body} {n}",
                                                        sender=sender).as_bytes())
    ok(config_path, "spam", "train", "--spam", str(spam_dir), "--ham", str(ham_dir))
    return settings


def file_mail(database: Database, settings: Settings, subject: str, body: str, **headers: Any) -> Ticket:
    deliver(database, settings, make_mail(subject=subject, body=body, **headers).as_bytes(),
            Envelope("deliver", "bob@customer.test", ("support@example.com",)))
    with database.read() as session:
        return session.scalars(select(Ticket).order_by(Ticket.id.desc())).first()


def outbox(database: Database, ticket: Ticket) -> list[OutboxItem]:
    with database.read() as session:
        return list(session.scalars(select(OutboxItem).where(OutboxItem.ticket_id == ticket.id)))


def state(database: Database, mask: str) -> tuple[Status, SpamTraining]:
    with database.read() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.mask == mask)).one()
        return ticket.status, ticket.spam_training


def test_spam_is_held_unannounced_and_listed_only_for_review(config_path: Path, database: Database,
                                                              trained: Settings) -> None:
    held = file_mail(database, trained, "WINNER cash", SPAMMY, sender=PROMO)
    surer = file_mail(database, trained, "WINNER cash prize vi4gra", f"{SPAMMY} s0ftware winner vi4gra", sender=PROMO)
    wanted = file_mail(database, trained, "Printer invoice", HAMMY)
    assert (held.status, surer.status, wanted.status) == (Status.SPAM, Status.SPAM, Status.OPEN)
    assert held.spam_training is SpamTraining.NONE  # the filter's own judgement teaches it nothing
    assert outbox(database, held) == [] and outbox(database, wanted) != []  # no worker told, no one acknowledged

    listed = cli(config_path, "tickets", "--json")
    assert [t["mask"] for t in json.loads(listed.stdout)] == [wanted.mask]
    assert "2 held as spam, not listed: postdesk spam review" in listed.stderr
    assert {t["mask"] for t in json.loads(ok(config_path, "tickets", "--status", "spam", "--json"))} == {
        held.mask, surer.mask}
    assert json.loads(ok(config_path, "search", "invoice", "--json")) != []
    assert json.loads(ok(config_path, "search", "vi4gra", "--json")) == []  # search leaves held mail out too

    review = json.loads(ok(config_path, "spam", "review", "--json"))
    scores = [row["spam_score"] for row in review]
    assert {row["mask"] for row in review} == {held.mask, surer.mask} and scores == sorted(scores)  # surest last
    assert review[0]["purge_due"].startswith(str((utcnow() + timedelta(days=30)).date()))
    table = ok(config_path, "spam", "review")
    assert held.mask in table and "vi4gra" in table
    stats = json.loads(ok(config_path, "spam", "stats", "--json"))
    assert (stats["held"], stats["retention_days"]) == (2, 30)
    assert "held for review: 2" in ok(config_path, "spam", "stats")
    with database.read() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.ticket_id == held.id,
                                                         AuditEntry.action == "status")).one()
    assert entry.actor == "spam filter" and entry.detail.startswith("open -> spam: held, spam score")


def test_notspam_releases_a_held_ticket_as_if_it_had_just_arrived(config_path: Path, database: Database,
                                                                  trained: Settings) -> None:
    held = file_mail(database, trained, "WINNER cash", SPAMMY, sender=PROMO,
                     attachments=[("offer.pdf", "application/pdf", b"%PDF-1.4 offer")])
    before = totals_of(database)
    assert ok(config_path, "notspam", held.mask, "--as", WORKER).strip() == f"{held.mask}: trained not_spam, ticket open"
    assert state(database, held.mask) == (Status.OPEN, SpamTraining.NOT_SPAM)
    assert totals_of(database) == (before[0], before[1] + 1)
    told = outbox(database, held)
    assert [item.purpose for item in told] == ["notification"]  # the workers hear of it now; nobody else
    with database.read() as session:
        raw = session.scalars(select(OutboxItem.raw).where(OutboxItem.id == told[0].id)).one()
    assert told[0].rcpt_tos == [WORKER] and b"offer.pdf" in raw and b"WINNER cash" in raw
    assert ok(config_path, "notspam", held.mask).strip().endswith("nothing counted again, ticket open")
    assert len(outbox(database, held)) == 1  # released once: a second verdict tells nobody again


def totals_of(database: Database) -> tuple[int, int]:
    with database.read() as session:
        counted = totals(session)
    return counted.spam, counted.ham


def test_spam_verdict_on_a_held_ticket_deletes_it_and_trains_spam(config_path: Path, database: Database,
                                                                  trained: Settings) -> None:
    held = file_mail(database, trained, "WINNER cash", SPAMMY, sender=PROMO)
    before = totals_of(database)
    ok(config_path, "spam", held.mask, "--as", WORKER)
    assert state(database, held.mask) == (Status.DELETED, SpamTraining.SPAM)
    assert totals_of(database) == (before[0] + 1, before[1]) and outbox(database, held) == []


def test_a_held_ticket_changes_only_by_a_verdict_or_deletion(config_path: Path, database: Database,
                                                             trained: Settings) -> None:
    held = file_mail(database, trained, "WINNER cash", SPAMMY, sender=PROMO)
    for args in (("close", held.mask), ("reopen", held.mask), ("assign", held.mask, "--owner", WORKER),
                 ("priority", held.mask, "high"), ("wait", held.mask, "--for", "2d"),
                 ("reply", held.mask, "Thanks, we will send the money"), ("comment", held.mask, "looks odd")):
        refused = cli(config_path, *args, "--as", WORKER)
        assert refused.exit_code != 0 and "is held as spam" in refused.stderr, args
    refused = cli(config_path, "restore", held.mask)
    assert refused.exit_code != 0 and f"postdesk notspam {held.mask}" in refused.stderr
    assert state(database, held.mask) == (Status.SPAM, SpamTraining.NONE)
    ok(config_path, "delete", held.mask)
    assert state(database, held.mask) == (Status.DELETED, SpamTraining.NONE)


def test_more_mail_to_a_held_ticket_is_kept_silently_and_never_releases_it(database: Database,
                                                                           trained: Settings) -> None:
    """The spammer (or anyone) answering their own held mail, even with a worker's From: nothing changes."""
    first_id = "<campaign-1@pills.example.biz>"
    held = file_mail(database, trained, "WINNER cash", SPAMMY, message_id=first_id, sender="promo@pills.example.biz")
    for sender in ("promo@pills.example.biz", f"Jane <{WORKER}>"):
        file_mail(database, trained, "Re: WINNER cash", "Please release me #open #notspam", sender=sender,
                  in_reply_to=first_id, references=first_id)
    with database.read() as session:
        ticket = session.get(Ticket, held.id)
        assert ticket is not None and len(ticket.messages) == 2  # the forged worker's mail proves nothing: its own
        assert (ticket.status, ticket.updated_at) == (Status.SPAM, held.updated_at)  # no activity: retention runs on
        audit = session.scalars(select(AuditEntry.detail).where(AuditEntry.ticket_id == held.id)).all()
    assert outbox(database, held) == [] and all("spam ->" not in line for line in audit)


def test_unjudged_held_spam_is_purged_after_its_retention_and_not_before(database: Database,
                                                                         trained: Settings) -> None:
    held = file_mail(database, trained, "WINNER cash", SPAMMY, sender=PROMO)
    recent = file_mail(database, trained, "WINNER cash again", f"{SPAMMY} again", sender=PROMO)
    deleted = file_mail(database, trained, "Printer invoice", HAMMY)
    now = utcnow()
    with database.write() as session:
        session.execute(update(Ticket).where(Ticket.id.in_([held.id, deleted.id]))
                        .values(updated_at=now - timedelta(days=20)))
        session.execute(update(Ticket).where(Ticket.id == deleted.id).values(status=Status.DELETED))
    settings = load_settings_with(trained, retention_days=15)
    cutoffs = Cutoffs.from_settings(settings, now)
    with database.read() as session:
        assert count_purgeable(session, cutoffs).tickets == 1  # held 20 days > 15; deleted 20 days < 30
    report = run_purge(database, cutoffs, actor="test", clock=utcnow)
    assert report.tickets == 1
    with database.read() as session:
        assert set(session.scalars(select(Ticket.id))) == {recent.id, deleted.id}


def load_settings_with(settings: Settings, **spam: Any) -> Settings:
    from dataclasses import replace
    return replace(settings, spam=replace(settings.spam, **spam))


def test_a_mail_with_too_little_evidence_is_never_held(database: Database, trained: Settings) -> None:
    """Three known spammy words are a score, not a case: below min_words (5) the ticket opens as usual."""
    thin = file_mail(database, trained, "Hello", "vi4gra s0ftware", sender="someone@elsewhere.example")
    assert thin.spam_score is not None and thin.spam_score > 0.9
    assert thin.status is Status.OPEN and outbox(database, thin) != []


def test_spam_score_reads_files_folders_and_mboxes_in_input_order(config_path: Path, tmp_path: Path,
                                                                  trained: Settings) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "a.eml").write_bytes(make_mail(subject="WINNER", body=SPAMMY, sender=PROMO).as_bytes())
    (folder / "b.eml").write_bytes(b"")  # unreadable: reported on its line, the rest still scored
    (folder / "c.eml").write_bytes(make_mail(subject="Printer", body=HAMMY).as_bytes())
    mbox = tmp_path / "two.mbox"
    mbox.write_bytes(b"".join(b"From x@y Fri Nov 20 09:30:00 2026\n" + make_mail(subject=s, body=b, sender=f).as_bytes()
                              .replace(b"\r\n", b"\n") + b"\n"
                              for s, b, f in (("Printer", HAMMY, "alice@customer.test"), ("WINNER", SPAMMY, PROMO))))
    single = tmp_path / "one.eml"
    single.write_bytes(make_mail(subject="Printer", body=HAMMY).as_bytes())
    result = cli(config_path, "spam", "score", str(single), str(folder), str(mbox), "--json")
    assert result.exit_code == 1 and "1 of 6 mails could not be read" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["file"].split("#")[0]).name for line in lines] == ["one.eml", "a.eml", "b.eml", "c.eml",
                                                                          "two.mbox", "two.mbox"]
    assert [line.get("spam") for line in lines] == [False, True, None, False, False, True]
    assert "error" in lines[2] and all("interesting_words" in line for i, line in enumerate(lines) if i != 2)
    plain = cli(config_path, "spam", "score", str(folder / "a.eml"), str(folder / "c.eml"))
    assert [line.split()[1] for line in plain.stdout.splitlines()] == ["spam", "ham"]
    assert "spam score:" in ok(config_path, "spam", "score", str(single))  # one mail: its words too


def test_spam_score_of_many_mails_is_done_in_worker_processes_with_the_same_result(
        config_path: Path, tmp_path: Path, trained: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Enough mails for the pool (mailgate.parse_pool): every line as one process gives it, in input order."""
    import mailgate.parse_pool

    folder = tmp_path / "many"
    folder.mkdir()
    assert mailgate.parse_pool.POOL_FROM < 240
    for number in range(240):
        spammy = number % 3 == 0
        mail = make_mail(subject=f"WINNER {number}" if spammy else f"Printer {number}", body=SPAMMY if spammy else HAMMY,
                         sender=PROMO if spammy else "alice@customer.test").as_bytes()
        (folder / f"{number:04}.eml").write_bytes(b"From x@y Fri Nov 20 09:30:00 2026\n" * (number % 2) + mail)
    named = sorted(folder.iterdir())[:30]  # named on their own too: read by the workers, not the parent
    pooled = cli(config_path, "spam", "score", "--json", str(folder), *map(str, named))
    monkeypatch.setattr(mailgate.parse_pool, "POOL_FROM", 10**9)
    alone = cli(config_path, "spam", "score", "--json", str(folder), *map(str, named))
    assert pooled.exit_code == alone.exit_code == 0, pooled.stderr
    lines = [json.loads(line) for line in pooled.stdout.splitlines()]
    assert len(lines) == 240 + 30
    assert [lines[240]["file"], lines[241]["file"]] == [str(named[0]), f"{named[1]}#1"]  # a `From ` line: an mbox of one
    assert pooled.stdout == alone.stdout
    assert [line["spam"] for line in lines[:240]] == [n % 3 == 0 for n in range(240)]
