"""Makes the test kit's fixtures visible to every test; under CI, a test may not skip for want of a service."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from testkit import clock, config_path, daemon, database, db_url, postgres_url, settings, sink  # noqa: F401
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


LEAKS_DIR = "POSTDESK_TEST_LEAKS_DIR"  # where each pytest-xdist worker leaves what its smarthosts received


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controlling process, before any worker starts
        os.environ[LEAKS_DIR] = tempfile.mkdtemp(prefix="postdesk-leaks-")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every byte the test smarthosts received in the whole run, grepped for every worker's address in all its forms.

    Under pytest-xdist each worker writes its findings to a file; the controller adds them up and fails the run.
    """
    found = {"received": len(SMARTHOST_RECEIVED), "workers": sorted(KNOWN_WORKERS), "leaks": smarthost_leaks()}
    folder = Path(os.environ.get(LEAKS_DIR) or tempfile.mkdtemp())
    if hasattr(session.config, "workerinput"):
        (folder / f"{session.config.workerinput['workerid']}.json").write_text(json.dumps(found))
        return
    for worker in folder.glob("*.json"):
        theirs = json.loads(worker.read_text())
        found = {"received": found["received"] + theirs["received"],
                 "workers": sorted({*found["workers"], *theirs["workers"]}), "leaks": found["leaks"] + theirs["leaks"]}
    shutil.rmtree(folder, ignore_errors=True)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"worker address check: {found['received']} mails the test smarthosts received, "
                            f"{len(found['workers'])} worker addresses, {len(found['leaks'])} leaks")
    if found["leaks"]:
        if reporter is not None:
            for leak in found["leaks"]:
                reporter.write_line(f"LEAK {leak}", red=True)
        session.exitstatus = 1
