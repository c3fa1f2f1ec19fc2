"""Monthly partitions of `events` (by UTC calendar month of `ts`): created before events need
them, dropped whole once older than the retention, so expiring raw data never runs a DELETE
over millions of rows. Months keep the partition count low (12 a year) when nothing expires.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

import psycopg
from psycopg import sql

_NAME = re.compile(r"^events_(\d{4})_(\d{2})$")


def _month_start(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp())


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def month_of(ts: float) -> tuple[int, int]:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.year, moment.month


def bounds(year: int, month: int) -> tuple[int, int]:
    """[start, end) of the month in epoch seconds."""
    return _month_start(year, month), _month_start(*_next(year, month))


def existing(conn: psycopg.Connection) -> dict[tuple[int, int], str]:
    """(year, month) -> partition name, for every partition of `events`."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    found = {}
    for (name,) in rows:
        if match := _NAME.match(name):
            found[(int(match[1]), int(match[2]))] = name
    return found


def ensure(conn: psycopg.Connection, timestamps: Iterable[float]) -> None:
    """Create the partitions these event times fall in, when missing."""
    # By UTC day first (a flush's 20,000 events fall in a day or two): months begin at
    # midnight UTC, so a day's month is any of its moments' month.
    days = {ts // 86400 for ts in timestamps}
    months = {month_of(day * 86400) for day in days}
    if not months:
        return
    have = existing(conn)
    for year, month in sorted(months - set(have)):
        start, end = bounds(year, month)
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(f"events_{year:04d}_{month:02d}"),
                sql.Literal(start),
                sql.Literal(end),
            )
        )


def ensure_ahead(conn: psycopg.Connection, now: float) -> None:
    """This month's and next month's partitions, so flushes rarely run DDL themselves."""
    year, month = month_of(now)
    start, _ = bounds(*_next(year, month))
    ensure(conn, (now, start))


def drop_expired(conn: psycopg.Connection, now: float, retention_days: int) -> list[str]:
    """Drop the partitions entirely older than the retention; delete finished visits too."""
    if retention_days <= 0:
        return []
    cutoff = now - retention_days * 86400
    dropped = []
    for (year, month), name in sorted(existing(conn).items()):
        if bounds(year, month)[1] <= cutoff:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            dropped.append(name)
    # Visits go with their events' month; open ones are not in rollup_visit yet and stay.
    kept_from = bounds(*month_of(cutoff))[0]
    conn.execute("DELETE FROM visits WHERE closed AND last_ts < %s", (kept_from,))
    return dropped
