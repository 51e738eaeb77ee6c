"""A real browser on the real desk: Debian's chromium driven by selenium, the app served by uvicorn on port 0.

The desk runs in a thread of the test process (its own event loop), on the test's database, so a test
can change a ticket behind the browser's back. Chromium is headless; its console is read after each
test, and any script error or alert fails the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from core.desk import Helpdesk
from web.app import create_app
from web.serve import listening_socket

CHROMEDRIVER_ENV = "POSTDESK_TEST_CHROMEDRIVER"


def chromedriver() -> str | None:
    return os.environ.get(CHROMEDRIVER_ENV) or shutil.which("chromedriver")


@dataclass
class ServedDesk:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def serve_in_thread(desk: Helpdesk) -> ServedDesk:
    config = uvicorn.Config(create_app(desk), host="127.0.0.1", port=0, lifespan="off", access_log=False,
                            log_level="warning")
    server = uvicorn.Server(config)
    sock = listening_socket(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), name="web desk", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the desk did not start")
        threading.Event().wait(0.01)
    host, port = sock.getsockname()[:2]
    return ServedDesk(f"http://{host}:{port}", server, thread)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """A headless chromium; skipped, with the reason, where Debian's chromium-driver is not installed."""
    driver_path = chromedriver()
    if driver_path is None:
        pytest.skip(f"chromium-driver is not installed (apt-get install chromium chromium-driver, or set "
                    f"{CHROMEDRIVER_ENV}); .ci/run installs it")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                     f"--user-data-dir={tmp_path / 'chromium'}", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()
