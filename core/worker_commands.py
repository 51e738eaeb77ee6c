"""Worker mail commands: `#`-lines at the top of a worker's reply, parsed and removed before relaying.

    #comment                    the whole mail is an internal note, relayed to nobody
    #waiting 3d | 2026-12-01 09:00   wait (for a duration, or until a time) instead of the default
    #close  #reopen             set the status
    #owner me|EMAIL             assign
    #priority low|normal|high|urgent
    #spam                       the ticket is spam
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from core.addresses import try_normalize
from core.errors import UsageError
from core.models import Priority

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class Commands:
    """What a worker's reply asked for; `problems` non-empty means it must not be relayed."""

    comment: bool = False
    waiting_until: datetime | None = None
    close: bool = False
    reopen: bool = False
    owner: str | None = None
    priority: Priority | None = None
    spam: bool = False
    problems: tuple[str, ...] = ()
    body: str = ""
    given: tuple[str, ...] = field(default=())


def parse_duration(text: str) -> timedelta:
    """`30m`, `4h`, `3d`, `2w`; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 4h, 3d, 2w)")
    return timedelta(**{_UNITS[match.group(2).lower()]: int(match.group(1))})


def due_time(for_: str | None, until: str | None, now: datetime) -> datetime | None:
    """When a ticket should wait until, from a duration (`3d`) or a time; None when neither is given.

    Every door (the CLI's --for/--until, the desk's form, the API's JSON) reads it here and says in
    its own words that one is missing; a wrong one is a UsageError naming it.
    """
    try:
        if for_ and for_.strip():
            return now + parse_duration(for_)
        if until and until.strip():
            return parse_due(until, now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return None


def parse_due(text: str, now: datetime) -> datetime:
    """A duration from now, or a local-time-less date taken as UTC; ValueError otherwise."""
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise ValueError(f"not a duration or date: {text!r} (use 3d or 2026-12-01 09:00)")


def parse_commands(text: str, worker_email: str, now: datetime) -> Commands:
    """Read leading `#` lines (blank lines between them allowed); the rest is the body."""
    lines = text.replace("\r\n", "\n").split("\n")
    values: dict[str, object] = {}
    problems: list[str] = []
    given: list[str] = []
    index = 0
    while index < len(lines) and (lines[index].strip().startswith("#") or not lines[index].strip()):
        line = lines[index].strip()
        index += 1
        if line:
            given.append(line)
            _apply(line, worker_email, now, values, problems)
    body = "\n".join(lines[index:]).strip("\n")
    return Commands(problems=tuple(problems), body=body, given=tuple(given), **values)  # type: ignore[arg-type]


def _apply(line: str, worker_email: str, now: datetime, values: dict[str, object], problems: list[str]) -> None:
    name, _, argument = line[1:].partition(" ")
    name, argument = name.lower(), argument.strip()
    if name in ("comment", "close", "reopen", "spam") and not argument:
        values[name] = True
    elif name == "waiting" and argument:
        try:
            values["waiting_until"] = parse_due(argument, now)
        except ValueError as exc:
            problems.append(f"#waiting: {exc}")
    elif name == "owner" and argument:
        owner = worker_email if argument.lower() == "me" else try_normalize(argument)
        if owner is None:
            problems.append(f"#owner: not an address: {argument!r}")
        else:
            values["owner"] = owner
    elif name == "priority" and argument.lower() in {p.value for p in Priority}:
        values["priority"] = Priority(argument.lower())
    else:
        problems.append(f"unknown command: {line}")
