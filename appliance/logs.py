"""Log lines for people (`log_format = "text"`) or for log shippers (`"json"`: one object per
line), and never a secret in either.

Every secret the settings hold (keys named like a password, secret or token, and passwords
written into a URL or DSN) is replaced by `***` in every line, whoever logged it - a
driver's error that quotes its connection string included. uvicorn's own loggers go through
the same handler; its access log is replaced by appliance.web.metrics's, which names the
route template instead of the path (no invitation token, no visitor URL, no address).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

SECRET_NAME = re.compile(r"(password|secret|token)$|^secret_key$", re.IGNORECASE)
URL_NAME = re.compile(r"(url|dsn|uri)$", re.IGNORECASE)
DSN_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words

# Attributes every LogRecord has; anything else was passed with `extra=` and is data.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_NOT_DATA = _STANDARD | {"color_message"}  # uvicorn's message with terminal colours


def secrets_in(settings: Mapping[str, Any]) -> list[str]:
    """Every secret value in a settings mapping (nested sections included), longest first."""
    found: set[str] = set()
    for key, value in _walk(settings):
        if isinstance(value, str | int) and not isinstance(value, bool) and SECRET_NAME.search(key):
            found.add(str(value))
        elif isinstance(value, str) and URL_NAME.search(key):
            found.update(_passwords_in_url(value))
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def _walk(mapping: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            yield from _walk(value)
        else:
            yield str(key), value


def _passwords_in_url(value: str) -> list[str]:
    passwords = [match.strip("'") for match in DSN_PASSWORD.findall(value)]
    try:
        if urlsplit(value).password:
            passwords.append(str(urlsplit(value).password))
    except ValueError:
        pass
    return passwords


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(secrets)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class TextFormatter(logging.Formatter):
    """`2026-01-31 12:00:00,123 INFO appliance.access: GET /api/events 202 0.4 ms`"""

    def __init__(self, redact: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """`{"time": "...Z", "level": "info", "logger": "...", "message": "...", ...extra}`"""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _NOT_DATA and not key.startswith("_"):
                plain = isinstance(value, int | float | bool)
                entry[key] = value if plain else self.redact(str(value))
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure_logging(settings: Any, stream: Any = None) -> logging.Handler:
    """Route every logger (uvicorn's and librdkafka's included) to one handler on stderr.

    Call it before the appliance is built, with `load_settings()`: plugins log while they
    register, and those lines must have the same format.
    """
    redact = Redactor(secrets_in(settings.as_dict()))
    handler = logging.StreamHandler(stream or sys.stderr)
    json_lines = str(settings.get("log_format", "text")) == "json"
    handler.setFormatter(JsonFormatter(redact) if json_lines else TextFormatter(redact))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = str(settings.get("log_level", "info")).upper()
    # A bad level is reported by the settings check (LOG_LEVEL: ...), not as a crash here.
    root.setLevel(level if level in logging.getLevelNamesMapping() else logging.INFO)
    return handler
