"""The `postgres` settings section: defaults, checks that name the key, connection options.

Read only when `stores` contains "postgres" or `account_store = "postgres"`; the embedded
profile never touches it, and never imports psycopg (13 MiB of a process that has no use for
it). The DSN holds a password, so no message here ever quotes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.core.settings import is_bool, is_int, one_of, require

NAME = "postgres"

DEFAULTS: dict[str, Any] = {
    "dsn": "",  # required: postgresql://user:password@host:5432/db (a secret in production)
    "sslmode": "",  # empty: what the DSN says; production sets "require"
    "pool_min": 1,
    "pool_max": 10,
    "pool_timeout_s": 5,  # how long a query waits for a connection before answering 503
    "connect_timeout_s": 5,
    # false behind a transaction-mode pooler (PgBouncer, Supabase's port 6543): psycopg then
    # never prepares statements on the server.
    "prepared_statements": True,
    "retention_days": 0,  # raw events and visits; 0 keeps them forever (rollups always are)
}

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def in_use(settings: Any) -> bool:
    return NAME in (settings.get("stores") or ()) or settings.get("account_store") == NAME


def _dsn_problem(settings: Any) -> str | None:
    """Checked by hand: `require` would quote the value, and the DSN carries the password."""
    dsn = settings.get("postgres.dsn")
    if not dsn:
        return (
            "POSTGRES.DSN: missing (e.g. postgresql://user:password@127.0.0.1:5432/appliance;"
            " set APPLIANCE_POSTGRES__DSN)"
        )
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(str(dsn))
    except psycopg.ProgrammingError:
        return "POSTGRES.DSN: not a PostgreSQL connection URI or key=value string"
    return None


def problems(settings: Any) -> list[str]:
    if not in_use(settings):
        return []
    checks = [
        _dsn_problem(settings),
        require(settings, "postgres.sslmode", one_of(SSL_MODES))
        if settings.get("postgres.sslmode")
        else None,
        require(settings, "postgres.pool_min", is_int(0, 1000)),
        require(settings, "postgres.pool_max", is_int(1, 1000)),
        require(settings, "postgres.pool_timeout_s", is_int(1, 600)),
        require(settings, "postgres.connect_timeout_s", is_int(1, 600)),
        require(settings, "postgres.prepared_statements", is_bool),
        require(settings, "postgres.retention_days", is_int(0, 100_000)),
    ]
    if not any(checks) and settings.postgres.pool_min > settings.postgres.pool_max:
        checks.append("POSTGRES.POOL_MIN: must not exceed POSTGRES.POOL_MAX")
    return [problem for problem in checks if problem]


@dataclass(frozen=True)
class PostgresSettings:
    dsn: str = field(repr=False)  # has the password
    sslmode: str
    pool_min: int
    pool_max: int
    pool_timeout_s: float
    connect_timeout_s: int
    prepared_statements: bool
    retention_days: int

    @classmethod
    def from_settings(cls, settings: Any) -> PostgresSettings:
        section = settings.postgres
        return cls(
            dsn=str(section.dsn),
            sslmode=str(section.sslmode or ""),
            pool_min=int(section.pool_min),
            pool_max=int(section.pool_max),
            pool_timeout_s=float(section.pool_timeout_s),
            connect_timeout_s=int(section.connect_timeout_s),
            prepared_statements=bool(section.prepared_statements),
            retention_days=int(section.retention_days),
        )

    def connection_kwargs(self) -> dict[str, Any]:
        """Options for every connection; they win over the same keys in the DSN."""
        kwargs: dict[str, Any] = {
            "connect_timeout": self.connect_timeout_s,
            "application_name": "appliance",
            # None: never PREPARE on the server (a transaction-mode pooler hands each
            # transaction to any backend, where the prepared statement would not exist).
            "prepare_threshold": 5 if self.prepared_statements else None,
        }
        if self.sslmode:
            kwargs["sslmode"] = self.sslmode
        return kwargs

    def where(self) -> str:
        """host:port/dbname, for messages (never the user or password)."""
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(self.dsn)
        host = parts.get("host") or "localhost"
        return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"
