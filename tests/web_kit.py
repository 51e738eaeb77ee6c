"""What the web desk's tests share: a desk with Jane, a worker who has a password, and mail filed on it."""

from __future__ import annotations

from collections.abc import Sequence

from core.db import Database
from core.desk import Helpdesk
from core.groups import ensure_default_group
from core.inbound import Envelope
from core.settings import Settings
from mailgate.deliver import deliver

JANE = "jane@corp.test"
PASSWORD = "correct horse battery"
UNKNOWN_MASK = "QQQ-00000-000"  # shaped like a mask, and no ticket has it


def desk_with_jane(settings: Settings, database: Database, mails: Sequence[bytes] = ()) -> Helpdesk:
    """The default group, Jane in it with PASSWORD, and these mails filed as if delivered to it."""
    with database.write() as session:
        ensure_default_group(session, settings.helpdesk)
    desk = Helpdesk(settings, database)
    desk.add_worker(JANE, "Jane Doe", ["Support"])
    desk.set_password(JANE, PASSWORD)
    for raw in mails:
        deliver(database, settings, raw, Envelope("deliver", "", ("support@example.com",)))
    return desk


def printer_mails(count: int = 2) -> list[bytes]:
    """Customers' first mails, one ticket each: alice0@customer.test writes "Printer 0", and so on."""
    from testkit import make_mail

    return [make_mail(sender=f"Alice <alice{n}@customer.test>", subject=f"Printer {n}", body="It broke.").as_bytes()
            for n in range(count)]
