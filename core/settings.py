"""Loads settings once into frozen, typed objects; a wrong key stops start-up by name."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.addresses import normalize_address, normalize_domain
from core.errors import ConfigError
from spam.scoring import Scoring

CONFIG_ENV = "POSTDESK_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "settings.toml"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///var/postdesk.db"
    # SQLite: how long a writer waits for another's lock before the command fails with "database is locked"
    busy_timeout_seconds: float = 30.0


class _Listening:
    """A `listen = "HOST:PORT"` setting read as its parts (`[::1]:25` too)."""

    listen: str

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


@dataclass(frozen=True)
class SmtpSettings(_Listening):
    listen: str = "127.0.0.1:2525"
    hostname: str = "postdesk.example.com"
    max_message_size: int = 26214400


@dataclass(frozen=True)
class HelpdeskSettings:
    domains: tuple[str, ...] = ("example.com",)
    addresses: tuple[str, ...] = ()
    default_group: str = "Support"
    default_address: str = "support@example.com"
    # One mail adds at most this many recipients to a ticket (a Cc of 500 is no conversation).
    max_new_recipients: int = 20
    # The helpdesk sends at most this many mails about one ticket to one address per hour: a loop
    # that gets past every other rule stops here, logged, audited, the workers told once.
    max_mails_per_hour: int = 20
    # TXT records (`name value` lines) answering DKIM key lookups instead of DNS: for a closed network.
    dkim_dns_file: str = ""


@dataclass(frozen=True)
class RelaySettings:
    """The smarthost every outbound mail goes through; the password may come from the environment."""

    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    password_env: str = "POSTDESK_RELAY_PASSWORD"
    ca_file: str = ""  # PEM certificates to trust for STARTTLS instead of the system's; relative to the config
    timeout_seconds: float = 30.0
    retry_initial_seconds: float = 60.0
    retry_max_seconds: float = 3600.0
    give_up_after_seconds: float = 259200.0

    def resolved_password(self) -> str:
        return os.environ.get(self.password_env, "") or self.password if self.password_env else self.password


@dataclass(frozen=True)
class AutoReplySettings:
    """Loop protection: at most one automatic reply per sender address per window."""

    window_seconds: float = 3600.0


@dataclass(frozen=True)
class SpamSettings:
    """The spam filter (spam/): how many words decide, when it may judge, what it does with spam."""

    interesting_words: int = 1000  # at most this many words combined (15 are stored and shown); bench/spam.py
    threshold: float = 0.65  # a new ticket scoring above this is held as spam, nobody notified; 1 = never
    min_training: int = 10  # mails trained as each of spam and not spam before the filter scores at all
    sure_after: int = 50  # until this many of each are trained the filter is young: it holds only above...
    young_threshold: float = 0.9  # ...this (its first not-spam mails look like the spam it knows); bench/spam.py
    method: str = "robinson"  # "robinson" (geometric means), "fisher" (Robinson-Fisher) or "graham"
    strength: float = 0.0178  # Robinson's s: how many mails' worth the prior `unknown` weighs (bogofilter's)
    unknown: float = 0.52  # Robinson's x: what a token seen too rarely is believed to be (bogofilter's)
    min_deviation: float = 0.375  # tokens nearer 0.5 than this are no evidence (bogofilter's)
    min_words: int = 5  # held only on at least this many spammy words each seen in `well_seen` trained mails
    well_seen: int = 3
    retention_days: float = 30.0  # a held ticket no worker judged is purged after this long

    def scoring(self) -> Scoring:
        """The arithmetic's knobs, as spam/scoring.py takes them."""
        return Scoring(strength=self.strength, unknown=self.unknown, min_deviation=self.min_deviation,
                       limit=self.interesting_words, method=self.method, well_seen=self.well_seen)


@dataclass(frozen=True)
class ImapSettings:
    """One mailbox polled over IMAP (an [[imap]] entry); its mail takes the same spool and pipeline as SMTP's."""

    host: str = ""
    port: int = 993
    security: str = "tls"  # "tls" (IMAPS), "starttls", or "none": plaintext, for a server on this machine
    user: str = ""
    password: str = ""
    password_env: str = ""  # an environment variable holding the password; it wins over `password`
    folder: str = "INBOX"
    after_import: str = "move"  # "move" to move_to, or "expunge": flag it deleted, then expunge
    move_to: str = "Imported"
    deliver_to: str = ""  # the helpdesk address this mailbox receives for: the envelope recipient SMTP would give
    name: str = ""  # the account's name in logs and in the import ledger; default user@host
    ca_file: str = ""  # PEM certificates to trust instead of the system's; relative to the config
    idle: bool = True  # wait with IDLE when the server offers it, else look every poll_seconds
    poll_seconds: float = 60.0
    idle_seconds: float = 600.0  # IDLE is renewed this often (RFC 2177: within 29 minutes)
    timeout_seconds: float = 30.0
    retry_initial_seconds: float = 1.0  # a failed connection or login retries after doubling delays
    retry_max_seconds: float = 300.0

    def resolved_password(self) -> str:
        return os.environ.get(self.password_env, "") or self.password if self.password_env else self.password


@dataclass(frozen=True)
class SchedulerSettings:
    """The daemon's clock work: when the purge runs, and how long deleted tickets and quarantined mail are kept."""

    purge_cron: str = "30 3 * * *"  # minute hour day month weekday, UTC; weekdays by name (core/cron.py)
    deleted_retention_days: float = 30.0  # a deleted ticket untouched this long is purged (restorable until then)
    quarantine_retention_days: float = 30.0


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"  # one of LOG_LEVELS, any case; stored upper-case


@dataclass(frozen=True)
class WebSettings(_Listening):
    """The web desk (web/): where it listens, the address its links use, who may say who the client is."""

    listen: str = "127.0.0.1:8025"  # "" : no web desk in `postdesk serve` (`postdesk web` still needs one)
    base_url: str = "http://127.0.0.1:8025"  # every link in mail; https makes cookies Secure
    trusted_proxies: tuple[str, ...] = ()  # X-Forwarded-For/-Proto honoured only from these addresses
    max_upload_bytes: int = 26_214_400  # a larger request gets 413
    session_idle_minutes: float = 480.0  # a session unused this long has ended
    session_hours: float = 72.0  # and every session ends this long after sign-in

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.lower().startswith("https://")


@dataclass(frozen=True)
class PortalSettings:
    """The customers' portal at /portal on the desk's server (web/portal.py)."""

    enabled: bool = True  # served wherever the desk is


@dataclass(frozen=True)
class TranscriptSettings:
    """Encrypted transcripts of closed tickets (core/transcripts.py), for groups that keep them."""

    retention_days: float = 365.0  # then the purge deletes the ciphertext and its link answers 404


@dataclass(frozen=True)
class TemplateSettings:
    """Where a helpdesk's own templates are: a file there named as a shipped one (templates/) wins."""

    folder: str = ""  # relative to the settings file; "" uses the shipped templates alone


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    helpdesk: HelpdeskSettings = HelpdeskSettings()
    relay: RelaySettings = RelaySettings()
    auto_reply: AutoReplySettings = AutoReplySettings()
    logging: LoggingSettings = LoggingSettings()
    spam: SpamSettings = SpamSettings()
    source: Path | None = None
    imap: tuple[ImapSettings, ...] = ()
    scheduler: SchedulerSettings = SchedulerSettings()
    templates: TemplateSettings = TemplateSettings()
    web: WebSettings = WebSettings()
    portal: PortalSettings = PortalSettings()
    transcripts: TranscriptSettings = TranscriptSettings()


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The file to read: --config, else $POSTDESK_CONFIG, else the shipped settings.toml."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    return Path(chosen).expanduser().resolve()


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read and validate one TOML file; every problem is a ConfigError naming its key."""
    source = config_path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {source}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(source), f"not valid TOML: {exc}") from None
    return settings_from_dict(data, base_dir=source.parent, source=source)


def settings_from_dict(data: dict[str, Any], base_dir: Path, source: Path | None = None) -> Settings:
    """Build Settings from parsed TOML, resolving relative paths against base_dir."""
    sections = {f.name: f.type for f in fields(Settings) if f.name != "source"}
    for name in data:
        if name not in sections:
            raise ConfigError(name, "unknown section")
    database = _section(DatabaseSettings, "database", data.get("database", {}))
    smtp = _section(SmtpSettings, "smtp", data.get("smtp", {}))
    helpdesk = _section(HelpdeskSettings, "helpdesk", data.get("helpdesk", {}))
    relay = _section(RelaySettings, "relay", data.get("relay", {}))
    auto_reply = _section(AutoReplySettings, "auto_reply", data.get("auto_reply", {}))
    logging_ = _logging(data.get("logging", {}))
    spam = _section(SpamSettings, "spam", data.get("spam", {}))
    if database.busy_timeout_seconds < 0:
        raise ConfigError("database.busy_timeout_seconds", "must not be negative")
    database = replace(database, url=_resolve_db_url(database.url, base_dir))
    _check_smtp(smtp)
    _check_relay(relay)
    relay = _resolve_ca_file(relay, base_dir)
    helpdesk = _normalize_helpdesk(helpdesk)
    if helpdesk.dkim_dns_file:
        helpdesk = replace(helpdesk, dkim_dns_file=str((base_dir / helpdesk.dkim_dns_file).resolve()))
    _check_spam(spam)
    return Settings(database, smtp, helpdesk, relay, auto_reply, logging_, spam, source,
                    imap=_imap_accounts(data.get("imap", []), base_dir),
                    scheduler=_scheduler(data.get("scheduler", {})),
                    templates=_templates(data.get("templates", {}), base_dir),
                    web=_web(data.get("web", {})), portal=_section(PortalSettings, "portal", data.get("portal", {})),
                    transcripts=_transcripts(data.get("transcripts", {})))


def _transcripts(raw: Any) -> TranscriptSettings:
    transcripts: TranscriptSettings = _section(TranscriptSettings, "transcripts", raw)
    if transcripts.retention_days <= 0:
        raise ConfigError("transcripts.retention_days", "must be above 0")
    return transcripts


def _web(raw: Any) -> WebSettings:
    web: WebSettings = _section(WebSettings, "web", raw)
    web = replace(web, trusted_proxies=tuple(web.trusted_proxies), base_url=web.base_url.rstrip("/"))
    if web.listen:
        try:
            port = web.port
        except (ValueError, IndexError):
            raise ConfigError("web.listen", f"expected HOST:PORT, got {web.listen!r}") from None
        if ":" not in web.listen or not 0 <= port <= 65535:
            raise ConfigError("web.listen", f"expected HOST:PORT, got {web.listen!r}")
    if not web.base_url.lower().startswith(("http://", "https://")):
        raise ConfigError("web.base_url", f"expected http://… or https://…, got {web.base_url!r}")
    if web.max_upload_bytes <= 0:
        raise ConfigError("web.max_upload_bytes", "must be positive")
    if web.session_idle_minutes <= 0 or web.session_hours <= 0:
        raise ConfigError("web.session_hours", "session lifetimes must be positive")
    return web


def _templates(raw: Any, base_dir: Path) -> TemplateSettings:
    templates: TemplateSettings = _section(TemplateSettings, "templates", raw)
    if not templates.folder:
        return templates
    folder = (base_dir / templates.folder).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError("templates.folder", f"no such folder: {folder}")
    return TemplateSettings(str(folder))


def _section(cls: type, name: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(name, "must be a table")
    defaults = {f.name: f.default for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in defaults:
            raise ConfigError(f"{name}.{key}", "unknown key")
        values[key] = _coerce(f"{name}.{key}", value, defaults[key])
    return cls(**values)


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "must be a list of strings")
        return tuple(value)
    if isinstance(default, float) and type(value) is int:
        return float(value)
    # bool is a subclass of int in Python, but `max_message_size = true` is still wrong
    if type(value) is not type(default):
        raise ConfigError(key, f"must be a {type(default).__name__}")
    return value


def _resolve_db_url(url: str, base_dir: Path) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("database.url", f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() != "sqlite":
        return url
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or Path(database).is_absolute():
        return url
    absolute = (base_dir / database).resolve()
    return parsed.set(database=str(absolute)).render_as_string(hide_password=False)


def _check_smtp(smtp: SmtpSettings) -> None:
    if ":" not in smtp.listen:
        raise ConfigError("smtp.listen", f"expected HOST:PORT, got {smtp.listen!r}")
    try:
        port = smtp.port
    except ValueError:
        raise ConfigError("smtp.listen", f"port is not a number in {smtp.listen!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError("smtp.listen", f"port {port} out of range")
    if smtp.max_message_size <= 0:
        raise ConfigError("smtp.max_message_size", "must be positive")


def _check_relay(relay: RelaySettings) -> None:
    if not 0 < relay.port <= 65535:
        raise ConfigError("relay.port", f"port {relay.port} out of range")
    for key in ("timeout_seconds", "retry_initial_seconds", "retry_max_seconds", "give_up_after_seconds"):
        if getattr(relay, key) <= 0:
            raise ConfigError(f"relay.{key}", "must be positive")


def _resolve_ca_file(relay: RelaySettings, base_dir: Path) -> RelaySettings:
    if not relay.ca_file:
        return relay
    path = (base_dir / Path(relay.ca_file).expanduser()).resolve()
    if not path.is_file():
        raise ConfigError("relay.ca_file", f"file not found: {path}")
    return replace(relay, ca_file=str(path))


def _logging(raw: Any) -> LoggingSettings:
    """The [logging] table; an unknown level is refused here, not by the logging module at its first line."""
    settings = _section(LoggingSettings, "logging", raw)
    level = settings.level.strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError("logging.level", f"unknown level {settings.level!r}: use one of {', '.join(LOG_LEVELS)}")
    return replace(settings, level=level)


def _check_spam(spam: SpamSettings) -> None:
    if spam.interesting_words < 1:
        raise ConfigError("spam.interesting_words", "must be at least 1")
    if not 0 < spam.threshold <= 1:
        raise ConfigError("spam.threshold", "must be above 0 and at most 1")
    if spam.min_training < 0:
        raise ConfigError("spam.min_training", "must not be negative")
    if spam.sure_after < 0:
        raise ConfigError("spam.sure_after", "must not be negative")
    if not 0 < spam.young_threshold <= 1:
        raise ConfigError("spam.young_threshold", "must be above 0 and at most 1")
    if spam.method not in ("robinson", "fisher", "graham"):
        raise ConfigError("spam.method", "must be \"robinson\", \"fisher\" or \"graham\"")
    if spam.strength <= 0:
        raise ConfigError("spam.strength", "must be above 0")
    if not 0 < spam.unknown < 1:
        raise ConfigError("spam.unknown", "must be between 0 and 1")
    if not 0 <= spam.min_deviation < 0.5:
        raise ConfigError("spam.min_deviation", "must be at least 0 and below 0.5")
    for key in ("min_words", "well_seen"):
        if getattr(spam, key) < 0:
            raise ConfigError(f"spam.{key}", "must not be negative")
    if spam.retention_days <= 0:
        raise ConfigError("spam.retention_days", "must be above 0 (held mail is never purged unseen at once)")


def _scheduler(raw: Any) -> SchedulerSettings:
    scheduler = _section(SchedulerSettings, "scheduler", raw)
    if scheduler.purge_cron != SchedulerSettings.purge_cron:  # the default is valid: commands skip loading APScheduler
        from core.cron import cron_trigger

        try:
            cron_trigger(scheduler.purge_cron)
        except ValueError as exc:
            raise ConfigError("scheduler.purge_cron", str(exc)) from None
    for key in ("deleted_retention_days", "quarantine_retention_days"):
        if getattr(scheduler, key) < 0:
            raise ConfigError(f"scheduler.{key}", "must not be negative")
    return scheduler


def _normalize_helpdesk(helpdesk: HelpdeskSettings) -> HelpdeskSettings:
    try:
        domains = tuple(normalize_domain(d) for d in helpdesk.domains)
    except ValueError as exc:
        raise ConfigError("helpdesk.domains", str(exc)) from None
    try:
        addresses = tuple(normalize_address(a) for a in helpdesk.addresses)
    except ValueError as exc:
        raise ConfigError("helpdesk.addresses", str(exc)) from None
    try:
        default_address = normalize_address(helpdesk.default_address)
    except ValueError as exc:
        raise ConfigError("helpdesk.default_address", str(exc)) from None
    if not helpdesk.default_group.strip():
        raise ConfigError("helpdesk.default_group", "must not be empty")
    for key in ("max_new_recipients", "max_mails_per_hour"):
        if getattr(helpdesk, key) < 1:
            raise ConfigError(f"helpdesk.{key}", "must be at least 1")
    return replace(helpdesk, domains=domains, addresses=addresses, default_group=helpdesk.default_group.strip(),
                   default_address=default_address)


IMAP_SECURITY = ("tls", "starttls", "none")
IMAP_AFTER_IMPORT = ("move", "expunge")


def _imap_accounts(raw: Any, base_dir: Path) -> tuple[ImapSettings, ...]:
    """The [[imap]] entries, each checked; names must be unique, since the import ledger is keyed by them."""
    if not isinstance(raw, list):
        raise ConfigError("imap", "must be an array of tables: [[imap]]")
    accounts = tuple(_imap_account(f"imap[{i}]", entry, base_dir) for i, entry in enumerate(raw))
    names = [account.name for account in accounts]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"imap[{i}].name", f"{name!r} names another [[imap]] entry too")
    return accounts


def _imap_account(key: str, raw: Any, base_dir: Path) -> ImapSettings:
    account = _section(ImapSettings, key, raw)
    _check_imap(key, account)
    try:
        deliver_to = normalize_address(account.deliver_to) if account.deliver_to else ""
    except ValueError as exc:
        raise ConfigError(f"{key}.deliver_to", str(exc)) from None
    ca_file = ""
    if account.ca_file:
        ca_file = str((base_dir / Path(account.ca_file).expanduser()).resolve())
        if not Path(ca_file).is_file():
            raise ConfigError(f"{key}.ca_file", f"file not found: {ca_file}")
    name = account.name or f"{account.user}@{account.host}"
    return replace(account, name=name, deliver_to=deliver_to, ca_file=ca_file)


def _check_imap(key: str, account: ImapSettings) -> None:
    for required in ("host", "user", "folder"):
        if not getattr(account, required).strip():
            raise ConfigError(f"{key}.{required}", "must not be empty")
    if not 0 < account.port <= 65535:
        raise ConfigError(f"{key}.port", f"port {account.port} out of range")
    if account.security not in IMAP_SECURITY:
        raise ConfigError(f"{key}.security", "must be \"tls\", \"starttls\" or \"none\"")
    if account.security == "none" and not _is_loopback(account.host):
        raise ConfigError(f"{key}.security", f"\"none\" would send the password to {account.host} in the clear: "
                                             "use \"tls\" or \"starttls\" (\"none\" is for a server on this machine)")
    if account.after_import not in IMAP_AFTER_IMPORT:
        raise ConfigError(f"{key}.after_import", "must be \"move\" or \"expunge\"")
    if account.after_import == "move" and account.move_to.strip() in ("", account.folder):
        raise ConfigError(f"{key}.move_to", "must name a folder other than the one polled")
    for seconds in ("poll_seconds", "idle_seconds", "timeout_seconds", "retry_initial_seconds", "retry_max_seconds"):
        if getattr(account, seconds) <= 0:
            raise ConfigError(f"{key}.{seconds}", "must be positive")
    if account.idle_seconds > 1740:
        raise ConfigError(f"{key}.idle_seconds", "must be at most 1740 (29 minutes, RFC 2177)")


def _is_loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host in ("::1", "[::1]")
