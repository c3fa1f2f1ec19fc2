"""Checks PostgreSQL for `appliance doctor` and `/readyz`: connect, then the migration level.

A plugin of its own beside `store_postgres`, using only that plugin's settings and its list
of migrations; it contributes a check whenever Postgres keeps accounts or analytics.
"""

from __future__ import annotations

from typing import Any

from appliance import hookimpl
from appliance.core.checks import Check
from plugins.store_postgres.config import NAME, PostgresSettings, in_use


@hookimpl
def register_checks(appliance: Any) -> list[Check]:
    settings = appliance.settings
    if not in_use(settings):
        return []
    from plugins.postgres_check.check import PostgresCheck

    tracks = []
    if settings.account_store == NAME:
        tracks.append("accounts")
    if NAME in settings.stores:
        tracks.append("analytics")
    return [Check("postgres", PostgresCheck(PostgresSettings.from_settings(settings), tracks).run)]
