"""Makes text that came in mail harmless to print on a worker's terminal.

Mail is written by strangers. A terminal obeys, rather than shows, the control characters in it:
ESC and CSI sequences move the cursor and erase lines, OSC sequences retitle the window or write the
clipboard (OSC 52), a lone carriage return goes back to the start of the line, and bidi overrides
reorder what is shown. Any of them can hide or overwrite what postdesk itself prints, such as the red
`unverified sender` flag. Every string from mail goes through `printable` before it is printed for
people (workers.output does it for every table and JSON document, so no command can forget it).
"""

from __future__ import annotations

import re
from typing import Any

# C0 but tab and newline, DEL, C1, and the bidi embedding, override and isolate controls.
_OBEYED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` without the characters a terminal would obey instead of show; the text around them is kept."""
    return _OBEYED.sub("", text)


def printable_values(value: Any) -> Any:
    """A copy of a ticket, row or list as the read queries return it, with every string made `printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {key: printable_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_values(item) for item in value]
    return value


def json_safe(text: str) -> str:
    """JSON text with the obeyed characters JSON leaves raw (DEL, C1, bidi) written as escapes like \\u009b."""
    return _OBEYED.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
