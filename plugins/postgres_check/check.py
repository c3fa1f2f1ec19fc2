"""Connect with the store's own settings (TLS mode included) and compare the migrations the
database has applied with the ones this version ships."""

from __future__ import annotations

import psycopg

from appliance.core.checks import CheckFailed
from plugins.store_postgres.config import PostgresSettings
from plugins.store_postgres.migrate import scripts

MIGRATE = "run `appliance migrate` (serve and process also migrate when they start)"


class PostgresCheck:
    def __init__(self, settings: PostgresSettings, tracks: list[str]) -> None:
        self.settings = settings
        self.tracks = tracks

    def run(self, timeout_s: float) -> str:
        where = self.settings.where()
        kwargs = self.settings.connection_kwargs() | {"connect_timeout": max(1, round(timeout_s))}
        try:
            with psycopg.connect(self.settings.dsn, **kwargs) as conn:
                tls = conn.pgconn.ssl_in_use
                applied = self._applied(conn)
        except psycopg.OperationalError as error:
            reason = (str(error).strip().splitlines() or ["no reason given"])[0]
            reason = reason.removeprefix("connection failed: ")
            raise CheckFailed(f"cannot connect to {where} ({reason})", fix_for(reason)) from None
        levels = []
        for track in self.tracks:
            shipped = [version for version, _ in scripts(track)]
            missing = [version for version in shipped if version not in applied.get(track, ())]
            if missing:
                raise CheckFailed(
                    f"connected to {where}, but {track} lacks migration(s)"
                    f" {', '.join(map(str, missing))} of {len(shipped)}",
                    MIGRATE,
                )
            levels.append(f"{track} {len(shipped)}/{len(shipped)}")
        transport = "TLS" if tls else "no TLS"
        return f"connected to {where} ({transport}); migrations: {', '.join(levels)}"

    def _applied(self, conn: psycopg.Connection) -> dict[str, set[int]]:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return {}
        applied: dict[str, set[int]] = {}
        rows = conn.execute("SELECT track, version FROM schema_migrations").fetchall()
        for track, version in rows:
            applied.setdefault(track, set()).add(int(version))
        return applied


def fix_for(reason: str) -> str:
    lowered = reason.lower()
    if "password" in lowered or "authentication" in lowered:
        return "check the user and password in APPLIANCE_POSTGRES__DSN"
    if "ssl" in lowered or "tls" in lowered or "certificate" in lowered:
        return "check POSTGRES.SSLMODE: production requires TLS, so the server must offer it"
    if "does not exist" in lowered:
        return "create that database and role, or correct them in APPLIANCE_POSTGRES__DSN"
    return (
        "start PostgreSQL, or correct the host and port in APPLIANCE_POSTGRES__DSN"
        " (Supabase: 5432, or 6543 through its pooler) and let this host reach it"
    )
