"""Embedded store: accounts and analytics in SQLite files under the data directory.

Settings: ``stores`` contains ``"sqlite"`` to keep analytics here; ``account_store =
"sqlite"`` to keep accounts here; ``sqlite.analytics_file`` and ``sqlite.accounts_file``
name the files (relative to ``data_dir``); ``sqlite.writer_process`` (default true) writes
the analytics store's flushes from a child process, so the writes don't take the web server's
GIL (see writer_process.py).
"""

from __future__ import annotations

from typing import Any

from appliance import hookimpl
from appliance.core.settings import data_dir, is_bool, require
from plugins.store_sqlite.accounts import SqliteAccountStore
from plugins.store_sqlite.analytics import SqliteAnalyticsStore

NAME = "sqlite"


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {
        "sqlite": {
            "analytics_file": "analytics.db",
            "accounts_file": "accounts.db",
            "writer_process": True,
        }
    }


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    problems = [
        require(settings, "sqlite.analytics_file"),
        require(settings, "sqlite.accounts_file"),
        require(settings, "sqlite.writer_process", is_bool),
    ]
    return [problem for problem in problems if problem]


@hookimpl(trylast=True)
def register_account_store(appliance: Any) -> SqliteAccountStore | None:
    settings = appliance.settings
    if settings.account_store != NAME:
        return None
    return SqliteAccountStore(data_dir(settings) / settings.sqlite.accounts_file)


@hookimpl
def register_stores(appliance: Any) -> list[SqliteAnalyticsStore]:
    settings = appliance.settings
    if NAME not in settings.stores:
        return []
    path = data_dir(settings) / settings.sqlite.analytics_file
    return [SqliteAnalyticsStore(path, writer_process=settings.sqlite.writer_process)]
