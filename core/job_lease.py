"""Jobs that run once across daemons: one row per job says when it is next due and who holds it until when.

A daemon claims a due job by a conditional UPDATE (nobody holds it, or the holder's lease ran out),
renews the lease as it works, and when done sets the next due time and lets go. A daemon that stops
mid-job leaves a lease that runs out; another daemon then claims the same due run, so none is lost.
The row is the only record: nothing about a job lives in one daemon's memory.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Update, or_, select, update
from sqlalchemy.orm import Session

from core.models import JobLease
from core.upsert import insert_ignore


def new_holder() -> str:
    """A name for this process that no other daemon, here or on another host, can share."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def schedule_job(session: Session, name: str, next_run_at: datetime) -> None:
    """Make sure the job has a row; a next run later than `next_run_at` (an older schedule's) is brought forward."""
    if insert_ignore(session, JobLease.__table__, {"name": name, "next_run_at": next_run_at}):
        return
    session.execute(update(JobLease).where(JobLease.name == name, JobLease.next_run_at > next_run_at)
                    .values(next_run_at=next_run_at).execution_options(synchronize_session=False))


def _claimable(name: str, now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (JobLease.name == name, JobLease.next_run_at <= now,
            or_(JobLease.lease_until.is_(None), JobLease.lease_until < now))


def job_is_due(session: Session, name: str, now: datetime) -> bool:
    """Whether a claim would succeed now: a read, so an idle daemon never takes a write lock to find out."""
    return session.scalar(select(JobLease.name).where(*_claimable(name, now))) is not None


def claim_job(session: Session, name: str, holder: str, now: datetime, lease: timedelta) -> bool:
    """Take the job for `lease` if it is due and free; False when not due or another daemon holds it."""
    return _changed(session, update(JobLease).where(*_claimable(name, now))
                    .values(holder=holder, lease_until=now + lease))


def renew_job(session: Session, name: str, holder: str, now: datetime, lease: timedelta) -> bool:
    """Extend our lease; False when another daemon took the job over (ours had run out): stop working then."""
    return _changed(session, update(JobLease).where(JobLease.name == name, JobLease.holder == holder)
                    .values(lease_until=now + lease))


def finish_job(session: Session, name: str, holder: str, next_run_at: datetime) -> bool:
    """The run is done: set the next one and let go; False when the job was no longer ours."""
    return _changed(session, update(JobLease).where(JobLease.name == name, JobLease.holder == holder)
                    .values(next_run_at=next_run_at, holder=None, lease_until=None))


def release_job(session: Session, name: str, holder: str) -> None:
    """Let go without finishing (the run failed or was stopped): the same run is due again at once."""
    _changed(session, update(JobLease).where(JobLease.name == name, JobLease.holder == holder)
             .values(holder=None, lease_until=None))


def _changed(session: Session, statement: Update) -> bool:
    # RETURNING, not rowcount: one way that reads the same on SQLite and psycopg
    result = session.execute(statement.returning(JobLease.name)
                             .execution_options(synchronize_session=False))
    return result.first() is not None
