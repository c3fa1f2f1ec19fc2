"""Versioned SQL migrations: `migrations/<track>/NNNN_name.sql`, each applied once.

Each file runs in its own transaction with its record in `schema_migrations`, under a
transaction-scoped advisory lock, so app instances starting together apply it once and a
transaction-mode pooler (which cannot hold a session lock) is no obstacle.
"""

from __future__ import annotations

from pathlib import Path

from plugins.store_postgres.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 0x61707061_6D696772  # "appamigr": any constant shared by every instance

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    track text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (track, version)
)"""


def scripts(track: str) -> list[tuple[int, Path]]:
    found = [(int(path.name.split("_", 1)[0]), path) for path in (MIGRATIONS / track).glob("*.sql")]
    return sorted(found)


def migrate(db: Database, track: str) -> list[int]:
    """Apply the track's migrations not applied yet; return the versions applied now."""
    applied = []
    for version, path in scripts(track):
        with db.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            conn.execute(_LEDGER)
            done = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE track = %s AND version = %s",
                (track, version),
            ).fetchone()
            if done:
                continue
            conn.execute(path.read_text().encode())  # several statements: no parameters
            conn.execute(
                "INSERT INTO schema_migrations (track, version, name) VALUES (%s, %s, %s)",
                (track, version, path.name),
            )
        applied.append(version)
    return applied
