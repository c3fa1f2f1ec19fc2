"""PostgreSQL store: shared accounts and domains, raw events, visits and rollups.

Settings: ``stores`` contains ``"postgres"`` to keep analytics here; ``account_store =
"postgres"`` to keep accounts and domains here (so several app instances share them); the
``postgres`` section (config.py lists every key, README.md explains them). Nothing connects
until a store is opened, so the embedded profile loads this plugin without a server; and
nothing imports psycopg until Postgres is in use (the modules below import it lazily).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

from appliance import hookimpl
from plugins.store_postgres.config import DEFAULTS, NAME, PostgresSettings, problems

if TYPE_CHECKING:
    from plugins.store_postgres.accounts import PostgresAccountStore
    from plugins.store_postgres.analytics import PostgresAnalyticsStore
    from plugins.store_postgres.db import Database

log = logging.getLogger(__name__)
RETENTION_EVERY_S = 3600

# One pool per appliance, shared by its account store and analytics store.
_databases: weakref.WeakKeyDictionary[Any, Database] = weakref.WeakKeyDictionary()


def _database(appliance: Any) -> Database:
    from plugins.store_postgres.db import Database

    if appliance not in _databases:
        _databases[appliance] = Database(PostgresSettings.from_settings(appliance.settings))
    return _databases[appliance]


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {"postgres": dict(DEFAULTS)}


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    return problems(settings)


@hookimpl
def register_account_store(appliance: Any) -> PostgresAccountStore | None:
    if appliance.settings.account_store != NAME:
        return None
    from plugins.store_postgres.accounts import PostgresAccountStore

    return PostgresAccountStore(_database(appliance))


@hookimpl
def register_stores(appliance: Any) -> list[PostgresAnalyticsStore]:
    settings = appliance.settings
    if NAME not in settings.stores:
        return []
    from plugins.store_postgres.analytics import PostgresAnalyticsStore

    retention_days = int(settings.postgres.retention_days)
    return [PostgresAnalyticsStore(_database(appliance), retention_days)]


@hookimpl
def startup(appliance: Any) -> None:
    """Expire raw events hourly (and create next month's partition ahead of time)."""
    for store in appliance.stores:
        if store.name == NAME:
            appliance.background(_expire_forever(store), "postgres-retention")


async def _expire_forever(store: PostgresAnalyticsStore) -> None:
    while True:
        try:
            dropped = await asyncio.to_thread(store.expire)
            if dropped:
                log.info("retention: dropped %s", ", ".join(dropped))
        except Exception:
            log.exception("postgres retention failed; trying again in an hour")
        await asyncio.sleep(RETENTION_EVERY_S)
