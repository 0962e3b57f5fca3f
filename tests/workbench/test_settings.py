"""Settings: declared once, documented in the README, read from the environment, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.settings import Settings, SettingsError, declared

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in readme.splitlines() if line.startswith("| `")}
    missing = [name for name, _, _ in declared() if name not in rows]
    assert missing == []


def test_defaults_match_the_design() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 5001)
    assert settings.database_url is None and settings.mqtt_url is None
    assert settings.data_dir == Path("var")


def test_values_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {"WORKBENCH_PORT": "6001", "WORKBENCH_DATABASE_URL": "postgresql://u:p@db:5432/x"}
    )
    assert settings.port == 6001
    assert settings.database_url == "postgresql://u:p@db:5432/x"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("WORKBENCH_PORT", "fifty", "WORKBENCH_PORT"),
        ("WORKBENCH_PORT", "70000", "WORKBENCH_PORT"),
        ("WORKBENCH_DATABASE_URL", "mysql://x/y", "WORKBENCH_DATABASE_URL"),
        ("WORKBENCH_DATABASE_URL", "postgresql://host:notaport/db", "WORKBENCH_DATABASE_URL"),
        ("WORKBENCH_MQTT_URL", "http://broker", "WORKBENCH_MQTT_URL"),
        ("WORKBENCH_LOG_LEVEL", "LOUD", "WORKBENCH_LOG_LEVEL"),
    ],
)
def test_bad_values_are_named(variable: str, value: str, named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({variable: value})


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings.from_env({}, data_dir=tmp_path)
    first = settings.resolved_secret_key()
    assert len(first) >= 40
    assert Settings.from_env({}, data_dir=tmp_path).resolved_secret_key() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert Settings.from_env({}, secret_key="given").resolved_secret_key() == "given"


def test_processes_starting_together_share_one_secret_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = Settings.from_env({}, data_dir=tmp_path / "shared")
    with ThreadPoolExecutor(16) as pool:
        keys = set(pool.map(lambda _: settings.resolved_secret_key(), range(64)))
    assert len(keys) == 1 and len(keys.pop()) > 40
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["secret_key"]
