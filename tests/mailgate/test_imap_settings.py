"""[[imap]] settings: the documented example loads, every mistake is named by its key, passwords may come from the environment."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.settings import DEFAULT_CONFIG, ImapSettings, settings_from_dict

BASE = {"host": "imap.example.com", "user": "support@example.com"}


def load(*entries: dict[str, Any], tmp: Path = Path(".")) -> tuple[ImapSettings, ...]:
    return settings_from_dict({"imap": list(entries)}, base_dir=tmp).imap


def test_the_commented_example_in_settings_toml_is_valid() -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    example = text[text.index("# [[imap]]"):]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else "" for line in example.splitlines())
    (account,) = load(*tomllib.loads(uncommented)["imap"])
    assert (account.name, account.security, account.password_env) == ("support-box", "tls", "POSTDESK_IMAP_PASSWORD")
    assert settings_from_dict(tomllib.loads(text), base_dir=DEFAULT_CONFIG.parent).imap == ()


def test_defaults_and_the_derived_name() -> None:
    (account,) = load(BASE | {"deliver_to": "Support@Example.COM"})
    assert account.name == "support@example.com@imap.example.com"
    assert (account.port, account.security, account.folder, account.after_import) == (993, "tls", "INBOX", "move")
    assert account.deliver_to == "support@example.com"  # normalised, as group addresses are


@pytest.mark.parametrize(("entry", "key"), [
    (BASE | {"pasword": "x"}, "imap[0].pasword"),
    (BASE | {"security": "ssl"}, "imap[0].security"),
    (BASE | {"security": "none"}, "imap[0].security"),  # a password in the clear over the network
    (BASE | {"after_import": "delete"}, "imap[0].after_import"),
    (BASE | {"move_to": "INBOX"}, "imap[0].move_to"),
    (BASE | {"port": 0}, "imap[0].port"),
    (BASE | {"port": "993"}, "imap[0].port"),
    (BASE | {"idle_seconds": 3600}, "imap[0].idle_seconds"),
    (BASE | {"retry_initial_seconds": 0}, "imap[0].retry_initial_seconds"),
    ({"user": "u"}, "imap[0].host"),
    (BASE | {"deliver_to": "not an address"}, "imap[0].deliver_to"),
    (BASE | {"ca_file": "missing.pem"}, "imap[0].ca_file"),
])
def test_a_wrong_entry_is_named_by_its_key(entry: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(entry)
    assert caught.value.key == key


def test_two_entries_may_not_share_a_name() -> None:
    with pytest.raises(ConfigError) as caught:
        load(BASE | {"folder": "INBOX"}, BASE | {"folder": "Sales", "move_to": "Done"})
    assert caught.value.key == "imap[1].name"
    assert len(load(BASE, BASE | {"name": "sales", "folder": "Sales"})) == 2


def test_plaintext_is_for_a_server_on_this_machine_only() -> None:
    assert [a.security for a in load(BASE | {"host": "127.0.0.1", "security": "none"},
                                     BASE | {"host": "localhost", "security": "none", "name": "local"})] == ["none"] * 2


def test_imap_must_be_an_array_of_tables() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"imap": BASE}, base_dir=Path("."))
    assert caught.value.key == "imap"


def test_the_password_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    (account,) = load(BASE | {"password": "in-the-file", "password_env": "POSTDESK_TEST_IMAP_PASSWORD"})
    monkeypatch.delenv("POSTDESK_TEST_IMAP_PASSWORD", raising=False)
    assert account.resolved_password() == "in-the-file"
    monkeypatch.setenv("POSTDESK_TEST_IMAP_PASSWORD", "from-the-environment")
    assert account.resolved_password() == "from-the-environment"


def test_a_relative_ca_file_resolves_against_the_settings_folder(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("")
    (account,) = load(BASE | {"ca_file": "ca.pem", "security": "starttls"}, tmp=tmp_path)
    assert account.ca_file == str(tmp_path / "ca.pem")
