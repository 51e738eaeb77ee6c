"""Public ticket ids like XER-83472-879: random, unguessable, found in subjects."""

from __future__ import annotations

import re
import secrets
import string

_MASK = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{3}-\d{5}-\d{3})(?![A-Za-z0-9])")


def new_mask() -> str:
    """A fresh mask from the OS's cryptographic source; uniqueness is the caller's insert."""
    letters = "".join(secrets.choice(string.ascii_uppercase) for _ in range(3))
    return f"{letters}-{secrets.randbelow(100_000):05d}-{secrets.randbelow(1000):03d}"


def normalize_mask(mask: str) -> str:
    return mask.strip().upper()


def masks_in_subject(subject: str) -> list[str]:
    """Every mask-shaped token in a subject, bracketed ones first, each once, upper-cased."""
    found = [m.group(1).upper() for m in _MASK.finditer(subject)]
    bracketed = {m.upper() for m in re.findall(r"\[\s*([A-Za-z]{3}-\d{5}-\d{3})\s*\]", subject)}
    ordered = [m for m in found if m in bracketed] + [m for m in found if m not in bracketed]
    return list(dict.fromkeys(ordered))


def reply_subject(subject: str) -> str:
    """`Re: subject`, never `Re: Re: subject`."""
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


def subject_with_mask(subject: str, mask: str) -> str:
    """The subject as the helpdesk writes it: `[MASK] subject`, never tagged twice."""
    if mask.upper() in (m for m in masks_in_subject(subject)):
        return subject
    return f"[{mask}] {subject}".rstrip()
