"""The daemon's clock (APScheduler): waiting tickets reopened at their due time, auto-close, and the purge.

Due times live only in the database, so any daemon can act on them. Every second a watch reads the
earliest due time (one step down an index, never a scan) and plans a one-off job at that moment: a
ticket is reopened at its due time rather than at the next poll, and a due time set meanwhile by
another process (the CLI, a worker's mail, another daemon) is seen within a second. Runs start at
least REOPEN_GAP apart, so a flood of due times is taken in batches. Reopening claims the rows, so
with two daemons each ticket is reopened once. The purge runs on the cron setting, once
across daemons (core.job_lease); auto-close runs in each daemon, where its claims make it once per ticket.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.cron import cron_trigger, next_run
from core.db import Database
from core.due_tickets import BATCH, SCHEDULER, close_long_waiting, next_due_at, reopen_due_tickets
from core.errors import StorageError
from core.job_lease import claim_job, finish_job, job_is_due, new_holder, release_job, renew_job, schedule_job
from core.models import utcnow
from core.notify import Outbound
from core.purge import Cutoffs, PurgeReport, run_purge
from core.settings import SchedulerSettings, Settings

log = logging.getLogger(__name__)

WATCH_SECONDS = 1.0
MAINTENANCE_SECONDS = 30.0  # how soon auto-close acts, a due purge starts, or a dead daemon's purge is taken over
PURGE_JOB = "purge"
PURGE_LEASE = timedelta(minutes=5)  # renewed every batch; a daemon that died holds the purge this long at most
REOPEN_JOB = "reopen-due"
# Runs start at least this far apart: under a flood of due times each run takes a batch, not one ticket.
REOPEN_GAP = timedelta(milliseconds=200)


class Scheduler:
    """Starts the jobs in a background thread pool; `stop` lets running jobs end at their next batch."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._config: SchedulerSettings = settings.scheduler
        self._settings = settings
        self._trigger = cron_trigger(settings.scheduler.purge_cron)
        self._outbound = Outbound.from_settings(settings)
        self._clock = clock
        self._holder = new_holder()
        self._stop = threading.Event()
        self._jobs = threading.Condition()  # guards _active and the moment of stopping
        self._active = 0
        self._reopening = threading.Lock()
        self._next_run_from = datetime.min.replace(tzinfo=timezone.utc)  # REOPEN_GAP after the last run
        self._aps = BackgroundScheduler(timezone=timezone.utc, executors={"default": ThreadPoolExecutor(4)},
                                        job_defaults={"coalesce": True, "misfire_grace_time": None})

    def start(self) -> None:
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every run of every job at INFO
        now = self._clock()
        with self._db.write() as session:
            schedule_job(session, PURGE_JOB, next_run(self._trigger, now))
        self._aps.add_job(self._job, "interval", ("watching due times", self._watch_due), seconds=WATCH_SECONDS,
                          id="watch-due", next_run_time=now, max_instances=1)
        self._aps.add_job(self._job, "interval", ("maintenance", self._maintain), seconds=MAINTENANCE_SECONDS,
                          id="maintenance", next_run_time=now, max_instances=1)
        self._aps.start()

    def stop(self) -> None:
        """No job starts after this; the running ones end at their next batch, and this returns then.

        APScheduler's shutdown(wait=True) would hold the job store's lock while it waits, and a job
        that asks the scheduler anything (get_job, add_job) would then wait for it for ever.
        """
        with self._jobs:
            self._stop.set()
        self._aps.shutdown(wait=False)
        with self._jobs:
            self._jobs.wait_for(lambda: self._active == 0)

    def _job(self, what: str, work: Callable[[], None]) -> None:
        """Every job runs through here: counted, so `stop` can wait for it, and never begun once stopping."""
        with self._jobs:
            if self._stop.is_set():
                return
            self._active += 1
        try:
            self._logging_failures(what, work)
        finally:
            with self._jobs:
                self._active -= 1
                self._jobs.notify_all()

    def _watch_due(self) -> None:
        """Plan the reopening at the earliest due time, unless it is planned for then or sooner, or running."""
        if self._reopening.locked():
            return  # the run in progress plans the next one when it ends
        with self._db.read() as session:
            due = next_due_at(session)
        if due is None:
            return
        run_at = max(due, self._next_run_from)
        planned = self._aps.get_job(REOPEN_JOB)
        if planned is not None and planned.next_run_time <= run_at:
            return
        # max_instances: a job planned just as a run ends waits for it rather than being skipped
        self._aps.add_job(self._job, "date", ("reopening due tickets", self._reopen_due), run_date=run_at,
                          id=REOPEN_JOB, replace_existing=True, max_instances=2)

    def _reopen_due(self) -> None:
        with self._reopening:
            total = 0
            while not self._stop.is_set():
                with self._db.write() as session:
                    count = reopen_due_tickets(session, self._outbound, self._clock())
                total += count
                if count < BATCH:
                    break
            self._next_run_from = self._clock() + REOPEN_GAP
        if total:
            log.info("reopened %d tickets whose due time came", total)
        self._watch_due()  # plan the next due time now, not at the next watch

    def _maintain(self) -> None:
        self._logging_failures("auto-close", self._auto_close)
        self._logging_failures("purge", self._purge_if_due)

    def _auto_close(self) -> None:
        while not self._stop.is_set():
            with self._db.write() as session:
                count = close_long_waiting(session, self._outbound, self._clock())
            if count:
                log.info("closed %d tickets that waited past their group's auto-close days", count)
            if count < BATCH:
                return

    def _purge_if_due(self) -> None:
        """Run the purge if its time came and no other daemon holds it; then set its next time from the cron."""
        now = self._clock()
        with self._db.read() as session:
            if not job_is_due(session, PURGE_JOB, now):
                return
        with self._db.write() as session:
            if not claim_job(session, PURGE_JOB, self._holder, now, PURGE_LEASE):
                return
        try:
            report = self._purge(now)
        except BaseException:
            with self._db.write() as session:
                release_job(session, PURGE_JOB, self._holder)  # the same run is due again, here or elsewhere
            raise
        with self._db.write() as session:
            if self._stop.is_set():
                release_job(session, PURGE_JOB, self._holder)
            else:
                finish_job(session, PURGE_JOB, self._holder, next_run(self._trigger, self._clock()))
        log.info("purge removed %s", report.describe())

    def _purge(self, now: datetime) -> PurgeReport:
        """One purge with the retention settings, holding the job lease (renewed in every batch)."""
        cutoffs = Cutoffs.from_settings(self._settings, now)

        def keep_going(session: Session, batch_now: datetime) -> bool:
            return not self._stop.is_set() and renew_job(session, PURGE_JOB, self._holder, batch_now, PURGE_LEASE)

        return run_purge(self._db, cutoffs, actor=SCHEDULER, clock=self._clock, keep_going=keep_going)

    @staticmethod
    def _logging_failures(what: str, work: Callable[[], None]) -> None:
        """A database that is down fails this run with one line; the next run tries again."""
        try:
            work()
        except (SQLAlchemyError, StorageError) as exc:
            log.warning("%s failed, will retry: %s", what, exc)
