"""Settings: environments, APPLIANCE_* overrides and one clear line per bad key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance import hookimpl
from appliance.core.runtime import Appliance
from appliance.core.settings import SettingsError, load_settings


def create(tmp_path: Path, *plugins: Any, **overrides: Any) -> Appliance:
    return Appliance.create(extra_plugins=plugins, data_dir=str(tmp_path / "data"), **overrides)


def test_embedded_is_the_default_environment() -> None:
    settings = load_settings()
    assert settings.current_env.lower() == "embedded"
    assert (settings.transport, list(settings.stores), settings.port) == (
        "memory",
        ["sqlite"],
        8000,
    )


def test_environment_variables_override_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_PORT", "9100")
    monkeypatch.setenv("APPLIANCE_INGEST__MAX_BODY_BYTES", "32768")
    settings = load_settings()
    assert settings.port == 9100
    assert settings.ingest.max_body_bytes == 32768
    assert settings.ingest.queue_size == 100000  # the rest of the section stays


@pytest.mark.security
def test_production_profile_secures_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_ENV", "production")
    settings = load_settings()
    assert settings.auth.secure_cookies is True
    assert settings.auth.session_days == 14


def test_unknown_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_ENV", "staging")
    with pytest.raises(SettingsError, match="APPLIANCE_ENV: unknown environment 'staging'"):
        load_settings()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": 0}, "PORT: must be between 1 and 65535"),
        ({"port": "http"}, "PORT: must be a whole number"),
        ({"ingest": {"max_body_bytes": 10}}, "INGEST.MAX_BODY_BYTES: must be between"),
        (
            {"processor": {"flush_interval_ms": True}},
            "PROCESSOR.FLUSH_INTERVAL_MS: must be a whole number",
        ),
        ({"log_level": "loud"}, "LOG_LEVEL: must be one of"),
        ({"ingest": {"rate_limit_per_ip": "fast"}}, "INGEST.RATE_LIMIT_PER_IP: must be a number"),
        ({"ingest": {"rate_limit_per_site": -1}}, "INGEST.RATE_LIMIT_PER_SITE: must be between"),
        ({"host": ""}, "HOST: missing"),
        ({"transport": "carrier-pigeon"}, "TRANSPORT: no enabled plugin provides 'carrier-pigeon'"),
        ({"stores": ["clickhouse"]}, "STORES: no enabled plugin provides clickhouse"),
        ({"account_store": "ldap"}, "ACCOUNT_STORE: no enabled plugin provides 'ldap'"),
        ({"secret_key": "short"}, "SECRET_KEY: must be at least 32 characters"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_key(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        create(tmp_path, **overrides)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_message_tells_which_variable_to_set(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="APPLIANCE_INGEST__QUEUE_SIZE"):
        create(tmp_path, ingest={"queue_size": -1})


class PluginWithSettings:
    @hookimpl
    def settings_defaults(self) -> dict[str, Any]:
        return {"webhook": {"url": "", "retries": 3}}

    @hookimpl
    def validate_settings(self, settings: Any) -> list[str]:
        return [] if settings.webhook.url else ["WEBHOOK.URL: missing (APPLIANCE_WEBHOOK__URL)"]


def test_plugins_declare_defaults_and_validate(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="WEBHOOK.URL: missing"):
        create(tmp_path, PluginWithSettings())
    appliance = create(tmp_path, PluginWithSettings(), webhook={"url": "http://127.0.0.1:9/hook"})
    assert appliance.settings.webhook.retries == 3  # default kept beside the user's url


@pytest.mark.security
def test_secret_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = create(tmp_path).secret_key
    assert len(first) >= 32
    assert create(tmp_path).secret_key == first
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
    assert create(tmp_path, secret_key="k" * 40).secret_key == "k" * 40


@pytest.mark.security
def test_production_refuses_a_missing_or_placeholder_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_ENV", "production")
    from appliance.core.settings import secret_key

    settings = load_settings(data_dir=str(tmp_path / "data"))
    with pytest.raises(SettingsError, match="SECRET_KEY: required in production"):
        secret_key(settings)
    for placeholder in ("change-me-change-me-change-me-change-me", "a" * 40, "my-secret-key-" * 3):
        settings.set("secret_key", placeholder)
        with pytest.raises(SettingsError, match="SECRET_KEY: looks like a placeholder"):
            secret_key(settings)
    good = "k3P9xQ2vZ7mB4nR8tW1yL6cF0hJ5sD2gA9eU3iO7"
    settings.set("secret_key", good)
    assert secret_key(settings) == good


def test_rates_may_be_fractions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One event every two seconds per address is a rate an operator may want."""
    monkeypatch.setenv("APPLIANCE_INGEST__RATE_LIMIT_PER_IP", "0.5")
    assert create(tmp_path).ingest.per_ip.rate == 0.5
