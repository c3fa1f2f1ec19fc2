"""Load settings with Dynaconf and stop start-up with one clear line when one is wrong."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf

from appliance.resources import resource_path

ENVIRONMENTS = ("embedded", "local", "production")


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the key."""


def load_settings(**overrides: Any) -> Dynaconf:
    """Read settings.toml, the optional user files and APPLIANCE_* variables.

    `overrides` win over everything; tests use them instead of mutating the environment.
    """
    env = os.environ.get("APPLIANCE_ENV", "embedded")
    if env not in ENVIRONMENTS:
        raise SettingsError(
            f"APPLIANCE_ENV: unknown environment {env!r}"
            f" (expected one of {', '.join(ENVIRONMENTS)})"
        )
    settings = Dynaconf(
        settings_files=[str(resource_path("settings.toml")), "appliance.toml", ".secrets.toml"],
        environments=True,
        env=env,
        env_switcher="APPLIANCE_ENV",
        envvar_prefix="APPLIANCE",
        load_dotenv=False,
    )
    for key, value in overrides.items():
        if isinstance(value, Mapping):  # one key of a section, never the whole section
            for sub_key, sub_value in value.items():
                settings.set(f"{key}.{sub_key}", sub_value)
        else:
            settings.set(key, value)
    return settings


def apply_defaults(settings: Dynaconf, defaults: Mapping[str, Any]) -> None:
    """Fill keys a plugin declares without overriding anything the user set."""
    for key, value in defaults.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                dotted = f"{key}.{sub_key}"
                if settings.get(dotted) is None:
                    settings.set(dotted, sub_value)
        elif settings.get(key) is None:
            settings.set(key, value)


Check = Callable[[Any], str | None]


def require(settings: Dynaconf, key: str, *checks: Check) -> str | None:
    """Return 'KEY: problem' for the first failing check, or None."""
    value = settings.get(key)
    if value is None or value == "":
        return f"{key.upper()}: missing (set it in settings.toml or APPLIANCE_{_env_name(key)})"
    for check in checks:
        problem = check(value)
        if problem:
            return f"{key.upper()}: {problem} (got {value!r}; set APPLIANCE_{_env_name(key)})"
    return None


def _env_name(key: str) -> str:
    return key.upper().replace(".", "__")


def is_number(low: float, high: float) -> Check:
    """A whole or decimal number in [low, high] (rates: 0.5 events/s is a rate)."""

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if not low <= value <= high:
            return f"must be between {low} and {high}"
        return None

    return check


def is_int(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be a whole number"
        if not low <= value <= high:
            return f"must be between {low} and {high}"
        return None

    return check


def is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def is_list(value: Any) -> str | None:
    return None if isinstance(value, list | tuple) else "must be a list"


def one_of(choices: Iterable[str]) -> Check:
    allowed = tuple(choices)

    def check(value: Any) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def core_problems(settings: Dynaconf) -> list[str]:
    """Validate the keys the core itself reads."""
    checks = [
        require(settings, "data_dir"),
        require(settings, "host"),
        require(settings, "port", is_int(1, 65535)),
        require(settings, "log_level", one_of(("critical", "error", "warning", "info", "debug"))),
        require(settings, "log_format", one_of(("text", "json"))),
        require(settings, "log_access", is_bool),
        require(settings, "request_timeout_s", is_int(1, 300)),
        require(settings, "transport"),
        require(settings, "stores", is_list),
        require(settings, "account_store"),
        require(settings, "plugins.autoload", is_bool),
        require(settings, "plugins.enabled", is_list) if settings.get("plugins.enabled") else None,
        require(settings, "plugins.blocked", is_list) if settings.get("plugins.blocked") else None,
        require(settings, "ingest.max_body_bytes", is_int(256, 1024 * 1024)),
        require(settings, "ingest.max_batch_events", is_int(1, 1000)),
        require(settings, "ingest.queue_size", is_int(1, 10_000_000)),
        require(settings, "ingest.rate_limit_per_ip", is_number(0, 1_000_000)),
        require(settings, "ingest.burst_per_ip", is_int(1, 10_000_000)),
        require(settings, "ingest.rate_limit_per_site", is_number(0, 10_000_000)),
        require(settings, "ingest.burst_per_site", is_int(1, 100_000_000)),
        require(settings, "processor.embedded", is_bool),
        require(settings, "processor.flush_interval_ms", is_int(10, 60_000)),
        require(settings, "processor.max_batch_events", is_int(1, 1_000_000)),
        require(settings, "auth.session_days", is_int(1, 365)),
        require(settings, "auth.secure_cookies", is_bool),
        require(settings, "metrics.port", is_int(0, 65535)),
        require(settings, "metrics.host"),
        _metrics_token_problem(settings),
    ]
    return [problem for problem in checks if problem]


def _metrics_token_problem(settings: Dynaconf) -> str | None:
    """Checked by hand: `require` would quote the value, and the token is a secret."""
    token = settings.get("metrics.token")
    if token and len(str(token)) < 16:
        return "METRICS.TOKEN: must be at least 16 characters (APPLIANCE_METRICS__TOKEN)"
    return None


def data_dir(settings: Dynaconf) -> Path:
    path = Path(settings.data_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


PLACEHOLDER_WORDS = ("change", "secret", "placeholder", "example", "replace", "todo", "xxx")


def looks_like_placeholder(value: str) -> bool:
    """Text someone meant to replace: a template word, or too few distinct characters."""
    lowered = value.lower()
    return any(word in lowered for word in PLACEHOLDER_WORDS) or len(set(value)) < 10


def secret_key(settings: Dynaconf) -> str:
    """The configured secret, or one generated once and kept in the data directory.

    In production it must be configured (several instances share it) and must not be a
    placeholder left from a template.
    """
    configured = settings.get("secret_key")
    production = settings.current_env.lower() == "production"
    if configured:
        if len(str(configured)) < 32:
            raise SettingsError("SECRET_KEY: must be at least 32 characters (APPLIANCE_SECRET_KEY)")
        if production and looks_like_placeholder(str(configured)):
            raise SettingsError(
                "SECRET_KEY: looks like a placeholder; set APPLIANCE_SECRET_KEY to a random value"
                " (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        return str(configured)
    if production:
        raise SettingsError(
            "SECRET_KEY: required in production (APPLIANCE_SECRET_KEY): every instance must"
            " share one random value"
        )
    path = data_dir(settings) / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
