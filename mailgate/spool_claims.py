"""Which runner files which spooled mail: a batch is claimed before it is parsed, under a lease.

Several daemons on one PostgreSQL each claim the oldest rows nobody holds (`FOR UPDATE SKIP LOCKED`:
a row another runner is claiming at this instant is passed over, not waited for), so no mail is
parsed by two of them and each adds throughput. On SQLite the claim is one write transaction under
the one write lock, which orders claims the same way. A claim is the runner's name and a lease: a
runner that died holding rows leaves them to the first runner that looks after the lease ran out.

A runner deletes a row only while its claim stands (core of "filed once"): one that outlived its
lease finds the row claimed by another, and leaves it alone.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from core.db import run
from core.models import SpoolItem

LEASE = timedelta(minutes=5)  # far beyond a batch's filing; what a dead runner's mail waits at most

_DELETE_MINE = delete(SpoolItem).where(  # built once: run per group of mails
    SpoolItem.id.in_(bindparam("spool_ids", expanding=True)), SpoolItem.claimed_by == bindparam("runner"),
).returning(SpoolItem.id)


def runner_name() -> str:
    """This runner, as its claims name it: the host and process, and a random part for runners in one process."""
    return f"{_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def _host() -> str:
    return socket.gethostname()[:30]


def release_the_dead(session: Session) -> int:
    """Give back the rows of runners on this host whose process is gone: a daemon restarted after a crash
    files what it had claimed at once, not after the lease. Another host's claims wait for their lease."""
    host = _host()
    holders = session.scalars(select(SpoolItem.claimed_by).where(SpoolItem.claimed_by.like(f"{host}:%"))
                              .distinct()).all()
    dead = [holder for holder in holders if holder is not None and not _alive(holder)]
    if not dead:
        return 0
    released = cast("CursorResult[Any]", session.execute(
        update(SpoolItem).where(SpoolItem.claimed_by.in_(dead)).values(claimed_by=None, lease_until=None)))
    return released.rowcount


def _alive(holder: str) -> bool:
    try:
        pid = int(holder.split(":")[1])
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except (IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def claim_batch(session: Session, runner: str, limit: int, now: datetime) -> list[Any]:
    """Claim up to `limit` of the oldest rows no live claim holds; returns them (id order), raw bytes and all."""
    free = (select(SpoolItem.id).where(or_(SpoolItem.lease_until.is_(None), SpoolItem.lease_until < now))
            .order_by(SpoolItem.id).limit(limit).with_for_update(skip_locked=True))  # SQLite: its one write lock
    claimed = session.execute(
        update(SpoolItem).where(SpoolItem.id.in_(free.scalar_subquery()))
        .values(claimed_by=runner, lease_until=now + LEASE)
        .returning(SpoolItem.id, SpoolItem.received_at, SpoolItem.source, SpoolItem.mail_from, SpoolItem.rcpt_tos,
                   SpoolItem.raw, SpoolItem.attempts)).all()
    return sorted(claimed, key=lambda row: row.id)


def delete_claimed(session: Session, runner: str, spool_id: int) -> bool:
    """Delete the row with its message filed; False when the claim is no longer this runner's."""
    return spool_id in delete_all_claimed(session, runner, [spool_id])


def delete_all_claimed(session: Session, runner: str, spool_ids: Sequence[int]) -> set[int]:
    """delete_claimed for several rows in one statement; returns the ids whose claim stood (now deleted)."""
    return set(run(session, _DELETE_MINE, {"spool_ids": list(spool_ids), "runner": runner}).scalars())


def release(session: Session, runner: str, spool_ids: Sequence[int], **values: Any) -> int:
    """Give rows back for the next look (a batch cut short), with any other changes; returns how many."""
    if not spool_ids:
        return 0
    released = cast("CursorResult[Any]", session.execute(
        update(SpoolItem).where(SpoolItem.id.in_(spool_ids), SpoolItem.claimed_by == runner)
        .values(claimed_by=None, lease_until=None, **values)))
    return released.rowcount


def note_attempt(session: Session, runner: str, spool_id: int, attempts: int, error: str, *,
                 keep_claim: bool = True) -> None:
    """Count a failed attempt on the row: kept claimed to try again at once, or given back for the next look."""
    values = {"attempts": attempts, "last_error": error[:2000]}
    if keep_claim:
        session.execute(update(SpoolItem).where(SpoolItem.id == spool_id, SpoolItem.claimed_by == runner)
                        .values(**values))
    else:
        release(session, runner, [spool_id], **values)
