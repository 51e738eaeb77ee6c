"""Makes the test kit's fixtures visible to every test; under CI, a test may not skip for want of a service."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

from testkit import config_path, daemon, database, db_url, postgres_url, settings, sink  # noqa: F401

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
