"""The helpdesk's admin commands: workers, groups, buckets and organizations, behind every door.

Part of `core.desk.Helpdesk` (its base class), kept apart so the ticket commands stay readable. The
rules stay in core.staff, core.buckets and core.organizations; a command here adds what an adapter
must not decide: one transaction (committed, or nothing changed), the checks that come from the
settings (a group's address must be one the gateway takes mail for; a bucket without a group is the
default group's) and an answer as a view value, never an ORM object.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.buckets import BucketView, add_bucket, list_buckets, remove_bucket, rename_bucket
from core.db import Database
from core.errors import UsageError
from core.groups import set_transcripts
from core.helpdesk_addresses import own_addresses
from core.organizations import (OrganizationView, add_organization, edit_organization, list_organizations,
                                remove_organization)
from core.settings import Settings
from core.staff import (GroupView, WorkerView, add_group, add_worker, edit_group, edit_worker, find_group,
                        group_view, list_groups, list_workers, remove_group, remove_worker, set_auto_close_days)


class AdminCommands:
    """A method per admin use case, each one transaction; `Helpdesk` supplies the settings and the database."""

    settings: Settings
    database: Database

    # workers

    def add_worker(self, email: str, name: str, groups: Sequence[str] = ()) -> WorkerView:
        """A new worker, member of the groups named (all of them, or none if one is unknown)."""
        with self.database.write() as session:
            return add_worker(session, email, name, list(groups))

    def edit_worker(self, email: str, *, name: str | None = None, join: Sequence[str] = (),
                    leave: Sequence[str] = ()) -> WorkerView:
        """Rename a worker, or have them join or leave groups (and so get, or stop getting, their mail)."""
        with self.database.write() as session:
            return edit_worker(session, email, name=name, join=tuple(join), leave=tuple(leave))

    def remove_worker(self, email: str) -> None:
        """Remove a worker; tickets they own become unowned."""
        with self.database.write() as session:
            remove_worker(session, email)

    def workers(self) -> list[WorkerView]:
        """Every worker with their groups, by address."""
        with self.database.read() as session:
            return list_workers(session)

    # groups

    def add_group(self, name: str, address: str, *, auto_reply: bool = True, close_notice: bool = False,
                  auto_close_days: int | None = None, language: str = "", transcripts: bool = False,
                  transcript_address: str = "") -> GroupView:
        """A new group with its Inbox; an address the gateway would refuse mail for is refused here,
        before the first customer's bounce would tell."""
        own = own_addresses(self.settings.helpdesk)
        with self.database.write() as session:
            added = add_group(session, name, address, auto_reply, close_notice, own, language)
            if auto_close_days is not None:
                set_auto_close_days(session, added.name, auto_close_days)
            row = find_group(session, added.name)
            set_transcripts(row, own, keep=transcripts, address=transcript_address)
            return group_view(session, row)

    def edit_group(self, name: str, *, address: str | None = None, auto_reply: bool | None = None,
                   close_notice: bool | None = None, language: str | None = None,
                   auto_close_days: int | None = None, no_auto_close: bool = False,
                   transcripts: bool | None = None, transcript_address: str | None = None) -> GroupView:
        """Change what is given of a group (a new address checked as `add_group` does); the rest stays.

        `auto_close_days` closes its tickets waiting untouched that long; `no_auto_close` never does.
        `transcripts` keeps its closed tickets' conversations encrypted, mailing their links
        (core.transcripts), with a copy to `transcript_address` ("" drops it).
        """
        if auto_close_days is not None and no_auto_close:
            raise UsageError("give either auto-close days or no auto-close, not both")
        own = own_addresses(self.settings.helpdesk)
        with self.database.write() as session:
            changed = edit_group(session, name, address=address, auto_reply=auto_reply, close_notice=close_notice,
                                 own=own, language=language)
            if auto_close_days is not None or no_auto_close:
                set_auto_close_days(session, changed.name, auto_close_days)
            row = find_group(session, changed.name)
            set_transcripts(row, own, keep=transcripts, address=transcript_address)
            return group_view(session, row)

    def remove_group(self, name: str) -> None:
        """Remove a group that has no tickets (one with tickets is refused: move them first)."""
        with self.database.write() as session:
            remove_group(session, name)

    def groups(self) -> list[GroupView]:
        """Every group with its address, options and members, by name."""
        with self.database.read() as session:
            return list_groups(session)

    # buckets: `group` None is the settings' default group, the one mail without a group's address lands in

    def add_bucket(self, name: str, group: str | None = None) -> BucketView:
        """A new bucket in a group."""
        with self.database.write() as session:
            return add_bucket(session, self.group_or_default(group), name)

    def rename_bucket(self, name: str, new_name: str, group: str | None = None) -> BucketView:
        """Rename a bucket; its tickets stay in it (the Inbox keeps its name)."""
        with self.database.write() as session:
            return rename_bucket(session, self.group_or_default(group), name, new_name)

    def remove_bucket(self, name: str, group: str | None = None) -> None:
        """Remove an empty bucket (one holding tickets is refused; the Inbox is never removed)."""
        with self.database.write() as session:
            remove_bucket(session, self.group_or_default(group), name)

    def buckets(self, group: str | None = None) -> list[BucketView]:
        """Every bucket with its ticket count, or one group's (here None means every group, not the default)."""
        with self.database.read() as session:
            return list_buckets(session, group)

    def group_or_default(self, group: str | None) -> str:
        """The group named, else the settings' default: public so an adapter can say where it acted."""
        return group or self.settings.helpdesk.default_group

    # organizations

    def add_organization(self, name: str, domain: str | None = None) -> OrganizationView:
        """A new organization; mail from its domain (or a subdomain) opens tickets under it from now on."""
        with self.database.write() as session:
            return add_organization(session, name, domain)

    def edit_organization(self, name: str, *, new_name: str | None = None, domain: str | None = None,
                          no_domain: bool = False) -> OrganizationView:
        """Rename an organization or change or forget its domain; its tickets stay with it."""
        if domain is not None and no_domain:
            raise UsageError("give either a domain or no domain, not both")
        with self.database.write() as session:
            return edit_organization(session, name, new_name=new_name, domain=domain, no_domain=no_domain)

    def remove_organization(self, name: str) -> int:
        """Remove an organization; its tickets stay, belonging to none. Returns how many it had."""
        with self.database.write() as session:
            return remove_organization(session, name)

    def organizations(self) -> list[OrganizationView]:
        """Every organization with its domain and ticket count, by name."""
        with self.database.read() as session:
            return list_organizations(session)
