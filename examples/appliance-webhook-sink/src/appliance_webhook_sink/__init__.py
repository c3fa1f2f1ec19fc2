"""Webhook sink: POST each flushed batch's rollups as signed JSON to a URL, exactly once.

Enable it by adding ``"webhook"`` to ``stores``; settings live in the ``webhook`` section
(see the README). The hookimpls are all here; the work is in `sink`, `payload`, `offsets`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from appliance import hookimpl
from appliance.core.settings import data_dir, require

from appliance_webhook_sink.sink import WebhookConfig, WebhookSink

NAME = "webhook"
MIN_SECRET_CHARS = 16


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {
        NAME: {
            "url": "",
            "secret": "",
            "timeout_s": 5,
            "attempts": 3,
            "backoff_s": 0.5,
            "offsets_file": "webhook_offsets.db",
        }
    }


def _http_url(value: Any) -> str | None:
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    return None


def _positive(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return "must be a number above 0"
    return None


def _attempts(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
        return "must be a whole number from 1 to 20"
    return None


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    if NAME not in settings.stores:
        return []
    problems = [
        require(settings, "webhook.url", _http_url),
        require(settings, "webhook.timeout_s", _positive),
        require(settings, "webhook.attempts", _attempts),
        require(settings, "webhook.backoff_s", _positive),
        require(settings, "webhook.offsets_file"),
    ]
    # Checked by hand: `require` quotes the bad value, and a secret must never be printed.
    if len(str(settings.get("webhook.secret") or "")) < MIN_SECRET_CHARS:
        problems.append(
            f"WEBHOOK.SECRET: must be at least {MIN_SECRET_CHARS} characters"
            " (set APPLIANCE_WEBHOOK__SECRET in the environment)"
        )
    return [problem for problem in problems if problem]


@hookimpl
def register_stores(appliance: Any) -> list[WebhookSink]:
    settings = appliance.settings
    if NAME not in settings.stores:
        return []
    section = settings.webhook
    config = WebhookConfig(
        url=str(section.url),
        secret=str(section.secret),
        timeout_s=float(section.timeout_s),
        attempts=int(section.attempts),
        backoff_s=float(section.backoff_s),
    )
    return [WebhookSink(config, data_dir(settings) / section.offsets_file, appliance.accounts)]
