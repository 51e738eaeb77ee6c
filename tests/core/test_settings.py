"""Settings: shipped defaults work, relative paths follow the file, a wrong key is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import DEFAULT_CONFIG, load_settings
from testkit import ROOT, run_cli


def test_shipped_settings_accept_example_com_on_sqlite() -> None:
    settings = load_settings(DEFAULT_CONFIG)
    assert settings.database.url == f"sqlite:///{ROOT / 'var' / 'postdesk.db'}"
    assert settings.smtp.listen == "127.0.0.1:2525"
    assert settings.helpdesk.domains == ("example.com",)
    assert settings.helpdesk.default_address == "support@example.com"


def test_relative_sqlite_path_resolves_against_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "p.toml"
    path.parent.mkdir()
    path.write_text('[database]\nurl = "sqlite:///data/x.db"\n')
    assert load_settings(path).database.url == f"sqlite:///{tmp_path / 'conf' / 'data' / 'x.db'}"


def test_environment_variable_points_at_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[smtp]\nlisten = "127.0.0.1:2600"\n')
    monkeypatch.setenv("POSTDESK_CONFIG", str(path))
    assert load_settings().smtp.port == 2600


@pytest.mark.parametrize("text, key", [
    ('[smtp]\nlistn = "x"\n', "smtp.listn"),
    ('[smpt]\n', "smpt"),
    ('[smtp]\nmax_message_size = "big"\n', "smtp.max_message_size"),
    ('[smtp]\nlisten = "nowhere"\n', "smtp.listen"),
    ('[helpdesk]\ndomains = "example.com"\n', "helpdesk.domains"),
    ('[helpdesk]\ndefault_address = "not an address"\n', "helpdesk.default_address"),
    ('[database]\nurl = "::nonsense::"\n', "database.url"),
    ('[database]\nbusy_timeout_seconds = -1\n', "database.busy_timeout_seconds"),
    ('[database]\nbusy_timeout_seconds = "long"\n', "database.busy_timeout_seconds"),
    ('[spam]\nthreshold = 0\n', "spam.threshold"),
    ('[spam]\nyoung_threshold = 1.5\n', "spam.young_threshold"),
    ('[spam]\nsure_after = -1\n', "spam.sure_after"),
    ('[spam]\nretention_days = 0\n', "spam.retention_days"),
    ('[web]\nlisten = "nowhere"\n', "web.listen"),
    ('[web]\nbase_url = "desk.example.com"\n', "web.base_url"),
    ('[web]\nmax_upload_bytes = 0\n', "web.max_upload_bytes"),
])
def test_wrong_setting_is_named(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert raised.value.key == key


def test_wrong_setting_stops_serve_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[smtp]\nlistn = "127.0.0.1:1"\n')
    result = run_cli(path, "serve")
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert lines == ["postdesk: setting smtp.listn: unknown key"]
