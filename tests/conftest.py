"""Makes the test kit's fixtures visible to every test; under CI, a test may not skip for want of a service."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from testkit import config_path, daemon, database, db_url, postgres_url, settings, sink  # noqa: F401
from testkit import postgres_schema, sqlite_schema  # noqa: F401  (the migrated schemas `database` starts from)
from testkit import SMARTHOST_RECEIVED, KNOWN_WORKERS, smarthost_leaks

NEEDS_A_SERVICE = ("postgres", "corpus")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked sqlite_only exercise no database difference: their PostgreSQL variant is not collected."""
    dropped = [i for i in items if i.get_closest_marker("sqlite_only")
               and getattr(i, "callspec", None) is not None and i.callspec.params.get("db_url") == "postgresql"]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if i not in dropped]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Under CI=true a test that needs PostgreSQL or the corpora fails instead of skipping."""
    report = (yield).get_result()
    needs = (any(item.get_closest_marker(m) for m in NEEDS_A_SERVICE)
             or "postgres_url" in getattr(item, "fixturenames", ()))
    if report.skipped and needs and os.environ.get("CI") == "true":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where it must run: {reason}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every byte the test smarthosts received in the whole run, grepped for every worker's address in all its forms."""
    leaks = smarthost_leaks()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"worker address check: {len(SMARTHOST_RECEIVED)} mails the test smarthosts received, "
                            f"{len(KNOWN_WORKERS)} worker addresses, {len(leaks)} leaks")
    if leaks:
        if reporter is not None:
            for leak in leaks:
                reporter.write_line(f"LEAK {leak}", red=True)
        session.exitstatus = 1
