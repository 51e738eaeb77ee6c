"""Cron expressions (`minute hour day month weekday`, UTC), read one way for the settings check and the scheduler."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger


def cron_trigger(expression: str) -> CronTrigger:
    """An APScheduler trigger for the expression; ValueError names what is wrong.

    APScheduler 3 counts weekday 0 as Monday where crontab counts it as Sunday, so weekdays must be
    written by name (mon-fri, sun): a number there would silently run on the wrong day.
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) == 5 and any(c.isdigit() for c in fields[4]):
        raise ValueError(f"write weekdays by name (mon-sun), not number, in {expression!r}")
    try:
        return CronTrigger.from_crontab(expression, timezone=timezone.utc)
    except ValueError as exc:
        raise ValueError(f"not a cron expression: {expression!r} ({exc})") from None


def next_run(trigger: CronTrigger, after: datetime) -> datetime:
    """The first time the trigger fires strictly after `after`."""
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if fire is None:
        raise ValueError("the cron expression never fires again")
    return fire.astimezone(timezone.utc)
