"""Embedded store: accounts and analytics in SQLite files under the data directory.

Settings: ``stores`` contains ``"sqlite"`` to keep analytics here; ``account_store =
"sqlite"`` to keep accounts here; ``sqlite.analytics_file`` and ``sqlite.accounts_file``
name the files (relative to ``data_dir``); ``sqlite.writer_process`` (default true) writes
the analytics store's flushes from a child process, so the writes don't take the web server's
GIL (see writer_process.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance import hookimpl

if TYPE_CHECKING:
    from plugins.store_sqlite.accounts import SqliteAccountStore
    from plugins.store_sqlite.analytics import SqliteAnalyticsStore

# The hooks import what they use when called: the writer process imports this package on its
# way to writer_process.py, and the settings, accounts and web modules would double its memory.

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
    from appliance.core.settings import is_bool, require

    problems = [
        require(settings, "sqlite.analytics_file"),
        require(settings, "sqlite.accounts_file"),
        require(settings, "sqlite.writer_process", is_bool),
    ]
    return [problem for problem in problems if problem]


@hookimpl(trylast=True)
def register_account_store(appliance: Any) -> SqliteAccountStore | None:
    from appliance.core.settings import data_dir
    from plugins.store_sqlite.accounts import SqliteAccountStore

    settings = appliance.settings
    if settings.account_store != NAME:
        return None
    return SqliteAccountStore(data_dir(settings) / settings.sqlite.accounts_file)


@hookimpl
def register_stores(appliance: Any) -> list[SqliteAnalyticsStore]:
    from appliance.core.settings import data_dir
    from plugins.store_sqlite.analytics import SqliteAnalyticsStore

    settings = appliance.settings
    if NAME not in settings.stores:
        return []
    path = data_dir(settings) / settings.sqlite.analytics_file
    return [SqliteAnalyticsStore(path, writer_process=settings.sqlite.writer_process)]
