"""The offsets this sink has delivered: (topic, partition) -> last offset, in SQLite.

This is what makes the sink exactly-once on the appliance's side. A redelivered batch (the
processor retries a flush when a store failed; a broker redelivers after a crash) carries
positions recorded here, and what was delivered is not POSTed again.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from appliance.core.transport import Position

Key = tuple[str, str]  # (topic, partition)


class AppliedOffsets:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Used from the worker threads the sink hands its blocking work to, one at a time.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS applied_positions ("
            " topic TEXT NOT NULL, partition TEXT NOT NULL, last_offset INTEGER NOT NULL,"
            " PRIMARY KEY (topic, partition))"
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def of_topic(self, topic: str) -> dict[str, int]:
        """partition -> last delivered offset, for every partition of `topic` seen."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT partition, last_offset FROM applied_positions WHERE topic = ?", (topic,)
            ).fetchall()
        return {partition: int(last) for partition, last in rows}

    def of_positions(self, positions: list[Position]) -> dict[Key, int]:
        """(topic, partition) -> last delivered offset, for the partitions of `positions`."""
        found = {}
        with self._lock:
            for key in {(p.topic, p.partition) for p in positions}:
                row = self._conn.execute(
                    "SELECT last_offset FROM applied_positions WHERE topic = ? AND partition = ?",
                    key,
                ).fetchone()
                if row is not None:
                    found[key] = int(row[0])
        return found

    def record(self, positions: list[Position]) -> None:
        """Remember the positions, in one transaction (call it after the receiver said 2xx)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO applied_positions (topic, partition, last_offset)"
                    " VALUES (?, ?, ?) ON CONFLICT (topic, partition)"
                    " DO UPDATE SET last_offset = max(last_offset, excluded.last_offset)",
                    [(p.topic, p.partition, p.last) for p in positions],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
