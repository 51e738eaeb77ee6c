"""Test kit for IMAP: a throwaway Dovecot on a free 127.0.0.1 port, and a loopback proxy that cuts connections."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from imapclient import IMAPClient

from testkit import free_port

DOVECOT_ENV = "POSTDESK_TEST_DOVECOT"  # .ci/run points it at the installed binary
USER, PASSWORD = "support", "s3cret-imap"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
# No growing delay for a client that keeps failing to log in: a test does that on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
"""


def dovecot_binary() -> str | None:
    """The dovecot to run: $POSTDESK_TEST_DOVECOT, else the one on PATH or in /usr/sbin."""
    for candidate in (os.environ.get(DOVECOT_ENV), shutil.which("dovecot"), "/usr/sbin/dovecot"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class Dovecot:
    """One dovecot master process with its own config, mail user and maildirs under a temporary folder."""

    binary: str
    root: Path
    port: int = field(default_factory=free_port)
    tls: bool = False  # when set: STARTTLS on `port`, implicit TLS on `tls_port`, certificate in `certificate`
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    def start(self) -> Dovecot:
        self._write_config()
        self.process = subprocess.Popen([self.binary, "-F", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)  # a group: see discard
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.process.stderr.read().decode()}{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def discard(self) -> None:
        """Kill the master and every child at once: the test is over, and a graceful stop takes a second."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.process = None

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, folder: str | None = "INBOX") -> IMAPClient:
        """A logged-in client of our own, the test's view of the mailbox."""
        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=15)
        client.login(USER, PASSWORD)
        if folder is not None:
            client.select_folder(folder)
        return client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        with self.client(None) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw)

    def count(self, folder: str, deleted: bool = True) -> int:
        """Messages in a folder (0 when it does not exist); deleted=False leaves out those flagged \\Deleted."""
        with self.client(None) as client:
            if not client.folder_exists(folder):
                return 0
            client.select_folder(folder, readonly=True)
            return len(client.search("ALL" if deleted else "UNDELETED"))

    def _write_config(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        uid, gid = _mail_owner()
        home = self.root / "home" / USER
        home.mkdir(parents=True, exist_ok=True)
        for folder in (self.root / "mail", home):
            os.chown(folder, uid, gid)
        (self.root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:::{home}::\n")
        ssl = "ssl = no"
        if self.tls:
            self._make_certificate()
            ssl = f"ssl = yes\nssl_cert = <{self.certificate}\nssl_key = <{self.root / 'key.pem'}"
        self.config.write_text(CONFIG.format(root=self.root, port=self.port, tls_port=self.tls_port if self.tls else 0,
                                             uid=uid, gid=gid, ssl=ssl))

    @property
    def certificate(self) -> Path:
        return self.root / "cert.pem"

    def _make_certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1: trusted only by a client given it as its CA file."""
        if self.certificate.exists():
            return
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(self.root / "key.pem"), "-out", str(self.certificate)],
                       check=True, capture_output=True)


def _mail_owner() -> tuple[int, int]:
    """Dovecot never touches mail as root: as root, the mail user's files belong to `nobody`."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A started Dovecot with one user (USER/PASSWORD) and an empty INBOX; skips when dovecot is missing."""
    yield from _running(tls=False)


@pytest.fixture
def dovecot_tls() -> Iterator[Dovecot]:
    """The same with TLS: STARTTLS on .port, IMAPS on .tls_port, a self-signed .certificate."""
    yield from _running(tls=True)


def _running(tls: bool) -> Iterator[Dovecot]:
    binary = dovecot_binary()
    if binary is None:
        pytest.skip(f"dovecot is not installed (apt-get install dovecot-imapd, or set {DOVECOT_ENV}; .ci/run does)")
    # Dovecot's unprivileged login processes must reach the sockets: not under pytest's 0700 folders.
    root = Path(tempfile.mkdtemp(prefix="postdesk-dovecot-"))
    root.chmod(0o755)
    server = Dovecot(binary, root, tls=tls).start()
    try:
        yield server
    finally:
        server.discard()
        shutil.rmtree(root, ignore_errors=True)


class CuttingProxy:
    """A TCP relay on 127.0.0.1 to a server that can drop every connection when a byte pattern passes.

    cut_when(pattern, direction) arms a one-shot trap: the first time `pattern` is seen going to the
    server ("up") or to the client ("down"), what came before its end is forwarded and both sides of
    that connection are closed, the way a network failure strikes mid-exchange; with refuse_after,
    new connections then fail too (the server is out of reach) until allow() is called.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._trap: tuple[bytes, str, bool] | None = None
        self._refusing = False
        self._lock = threading.Lock()
        self.cuts = 0
        self.connections = 0
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_when(self, pattern: bytes, direction: str, refuse_after: bool = False) -> None:
        with self._lock:
            self._trap = (pattern, direction, refuse_after)

    def refuse(self) -> None:
        self._refusing = True

    def allow(self) -> None:
        self._refusing = False

    def close(self) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing:
                client.close()
                continue
            self.connections += 1
            server = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink, direction in ((client, server, "up"), (server, client, "down")):
                threading.Thread(target=self._pump, args=(source, sink, direction, (client, server)),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str,
              pair: tuple[socket.socket, socket.socket]) -> None:
        tail = b""
        try:
            while data := source.recv(65536):
                end = self._sprung(tail + data, direction)
                if end is not None:  # forward up to the end of the pattern, then drop the line
                    sink.sendall(data[:max(0, end - len(tail))])
                    break
                sink.sendall(data)
                tail = (tail + data)[-4096:]
        except OSError:
            pass
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _sprung(self, seen: bytes, direction: str) -> int | None:
        """Where the armed pattern ends in `seen`, disarming it; None when it is not there."""
        with self._lock:
            if self._trap is None or self._trap[1] != direction or self._trap[0] not in seen:
                return None
            pattern, _, refuse_after = self._trap
            self._trap = None
            self._refusing = self._refusing or refuse_after
            self.cuts += 1
            return seen.index(pattern) + len(pattern)
