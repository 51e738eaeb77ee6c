"""Which package may import which: the doors (workers/, mailgate/) over core, spam beside it (issue 13).

Read from the source with `ast`, so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> dict[str, set[str]]:
    """Each module file of the package and the modules it imports anywhere in its body."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{module} imports {name}" for module, names in imported_modules(package).items()
            for name in sorted(names) if name.split(".")[0] in forbidden or name in forbidden]


def test_core_imports_no_door() -> None:
    assert offenders("core", ("workers", "mailgate", "click")) == []


def test_spam_only_scores_and_learns() -> None:
    """Status changes, notifications and ticket writes are core's: spam reads mail and counts words."""
    assert offenders("spam", ("core.tickets", "core.lifecycle", "core.notify", "core.spam_hold", "workers",
                              "mailgate", "click")) == []


@pytest.mark.parametrize("module", ["core", "core.lifecycle", "core.pipeline", "spam.filter"])
def test_the_core_loads_without_the_cli(module: str) -> None:
    loaded = subprocess.run([sys.executable, "-c", f"import sys, {module}; print('click' in sys.modules)"],
                            capture_output=True, text=True, cwd=ROOT, check=True)
    assert loaded.stdout.strip() == "False"


def test_the_cli_handles_no_orm_object_and_writes_no_ticket_itself() -> None:
    """workers/ calls core's commands and readers: from core.models it takes value types (enums) only."""
    import enum

    import core.models

    imported: list[str] = []
    for path in sorted((ROOT / "workers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "core.models":
                imported += [f"{path.name}: {alias.name}" for alias in node.names]
    not_values = [name for name in imported if not (
        isinstance(found := getattr(core.models, name.split(": ")[1]), type) and issubclass(found, enum.Enum)
        or name.endswith(": utcnow"))]
    assert not_values == []
    assert offenders("workers", ("core.tickets", "core.lifecycle", "core.ticket_states")) == []


THIN = ("staff_commands.py", "bucket_commands.py", "org_commands.py", "ticket_commands.py", "routing_commands.py")


@pytest.mark.parametrize("name", THIN)
def test_the_ticket_and_admin_commands_leave_the_transaction_to_the_helpdesk(name: str) -> None:
    """These adapters parse, call one Helpdesk command and print: they open no database or session themselves."""
    path = ROOT / "workers" / name
    opened = [f"line {node.lineno}: .{node.func.attr}(" for node in ast.walk(ast.parse(path.read_text(), str(path)))
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("database", "reader")]
    assert opened == []
    assert "sqlalchemy" not in imported_modules("workers")[f"workers/{name}"]
