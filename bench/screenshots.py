"""PNG pictures of the web desk for the README: the list, a ticket and the new-ticket form.

    python bench/screenshots.py            # writes docs/screenshots/*.png

A throwaway SQLite database is seeded through the real mail path (a few customers' mails, a worker's
answer, a comment), the desk is served by uvicorn on 127.0.0.1, and Debian's chromium (headless,
through selenium and chromedriver) signs in and takes each picture.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from core.db import open_database  # noqa: E402
from core.desk import Actor, Helpdesk  # noqa: E402
from core.inbound import Envelope  # noqa: E402
from core.models import Priority  # noqa: E402
from core.schema import ensure_schema  # noqa: E402
from core.settings import settings_from_dict  # noqa: E402
from mailgate.deliver import deliver  # noqa: E402
from web.app import create_app  # noqa: E402
from web.serve import listening_socket  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
WORKER, PASSWORD = "jane@corp.example", "correct horse battery"
MAILS = [("Alice Martin <alice@customer.example>", "Printer on fire", "The office printer smokes when it prints."),
         ("Bob Stone <bob@shop.example>", "Invoice 1003 is wrong", "The total counts the shipping twice."),
         ("Carla Diaz <carla@school.example>", "Password reset link expired", "The link says it expired at once."),
         ("Dan Wu <dan@factory.example>", "Order 5521: when does it ship?", "We need it before Friday."),
         ("Eve Novak <eve@lab.example>", "Export to CSV drops accents", "Zoë becomes Zo? in the file.")]


def seeded(folder: Path) -> Helpdesk:
    settings = settings_from_dict({"database": {"url": f"sqlite:///{folder / 'desk.db'}"},
                                   "helpdesk": {"domains": ["example.com"], "default_address": "support@example.com"},
                                   "web": {"listen": ""}}, base_dir=folder)
    db = open_database(settings.database.url)
    ensure_schema(db)
    desk = Helpdesk(settings, db)
    desk.add_group("Support", "support@example.com") if not desk.groups() else None
    desk.add_worker(WORKER, "Jane Doe", ["Support"])
    desk.set_password(WORKER, PASSWORD)
    for sender, subject, body in MAILS:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = sender, "support@example.com", subject
        mail.set_content(body)
        deliver(db, settings, mail.as_bytes(), Envelope("deliver", "", ("support@example.com",)))
    masks = [t["mask"] for t in desk.tickets()]
    jane = Actor(WORKER)
    desk.reply(masks[-1], "Sorry about that! Please unplug it; a technician comes tomorrow at 9.", (), jane)
    desk.comment([masks[-1]], "Called the customer: it is the fuser unit.", jane)
    desk.set_priority([masks[-1]], Priority.URGENT, jane)
    return desk


def serve(desk: Helpdesk) -> str:
    config = uvicorn.Config(create_app(desk), host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    sock = listening_socket(config)
    threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def main() -> int:
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        print("bench/screenshots.py: chromedriver is not installed (apt-get install chromium chromium-driver)",
              file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        desk = seeded(Path(folder))
        url = serve(desk)
        options = webdriver.ChromeOptions()
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860",
                         "--hide-scrollbars", f"--user-data-dir={Path(folder) / 'chromium'}"):
            options.add_argument(argument)
        browser = webdriver.Chrome(service=Service(driver_path), options=options)
        try:
            browser.get(f"{url}/sign-in")
            browser.find_element(By.ID, "email").send_keys(WORKER)
            browser.find_element(By.ID, "password").send_keys(PASSWORD)
            browser.find_element(By.ID, "sign-in").click()
            browser.save_screenshot(str(OUT / "list.png"))
            mask = re.sub(r"\s", "", browser.find_elements(By.CSS_SELECTOR, "tr.ticket")[0].get_attribute("data-mask"))
            browser.get(f"{url}/tickets/{mask}")
            browser.save_screenshot(str(OUT / "ticket.png"))
            browser.get(f"{url}/new")
            browser.save_screenshot(str(OUT / "new_ticket.png"))
        finally:
            browser.quit()
    for picture in sorted(OUT.glob("*.png")):
        print(f"{picture.relative_to(ROOT)}: {picture.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
