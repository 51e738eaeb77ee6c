"""Options several commands share, defined once so they read and behave the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

WORKER_ENV = "POSTDESK_WORKER"


def as_worker_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--as WORKER` (default $POSTDESK_WORKER): who is acting, for `me`, ownership and the audit log."""
    return click.option("--as", "worker_email", envvar=WORKER_ENV, metavar="WORKER",
                        help=f"The worker you are (default: ${WORKER_ENV}).")(command)
